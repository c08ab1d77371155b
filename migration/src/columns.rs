//! Column helpers shared by migrations, where the backends disagree on types.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

/// A UTC instant with microseconds. MySQL's `TIMESTAMP` stops in 2038 and drops fractions, so
/// MySQL/MariaDB get `DATETIME(6)` (always written in UTC); the others a timestamp with time zone.
pub fn instant(manager: &SchemaManager, name: impl IntoIden) -> ColumnDef {
    let mut column = ColumnDef::new(name);
    match manager.get_database_backend() {
        DatabaseBackend::MySql => column.custom(Alias::new("DATETIME(6)")),
        _ => column.timestamp_with_time_zone(),
    };
    column
}
