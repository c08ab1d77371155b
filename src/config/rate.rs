//! Request rates as settings: `N/s`, `N/min` or `N/h`.

use std::str::FromStr;
use std::time::Duration;

/// `N/s`, `N/min` or `N/h`: N requests, refilled evenly over the period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let (count, unit) = value
            .split_once('/')
            .ok_or("expected N/s, N/min or N/h, e.g. 10/min")?;
        let count: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or("the count must be a positive whole number")?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err("the unit must be s, min or h".into()),
        };
        Ok(Self { count, per })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print() {
        assert_eq!(
            "10/min".parse::<Rate>(),
            Ok(Rate {
                count: 10,
                per: Duration::from_secs(60)
            })
        );
        assert_eq!("3/s".parse::<Rate>().unwrap().to_string(), "3/s");
        assert_eq!(
            "100/h".parse::<Rate>().unwrap().per,
            Duration::from_secs(3600)
        );
        for bad in ["", "10", "0/min", "-1/min", "ten/min", "10/day", "10/"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?}");
        }
    }
}
