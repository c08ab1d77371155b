//! An email address in its normal form: the one spelling under which a mailbox is an account,
//! a resend cooldown, a send budget and a recipient.

use std::fmt;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use unicode_normalization::UnicodeNormalization;

use super::FieldProblem;

/// The longest address SMTP can carry (RFC 5321: a 256-octet path less its angle brackets),
/// and the width of the database columns. Counted on the normal form, which is what is stored.
const MAX_OCTETS: usize = 254;

/// Input longer than this is refused before any Unicode work on it. It is far above
/// `MAX_OCTETS` because trimming and the domain's mapping (which drops characters such as soft
/// hyphens) may shorten an address; none that is this long is worth normalizing.
const MAX_INPUT_OCTETS: usize = 1024;

/// The longest local part SMTP carries (RFC 5321). The mail worker's address parser refuses a
/// longer one, so accepting it would answer 202 for an email that is never sent.
const MAX_LOCAL_OCTETS: usize = 64;

/// Characters of an RFC 5322 atom besides ASCII letters and digits (`atext`).
const ATEXT_SYMBOLS: &[u8] = b"!#$%&'*+-/=?^_`{|}~";

/// An address in its normal form (docs/api.md): trimmed; the local part an ASCII dot-atom of
/// at most 64 octets, lowercased; the domain a host name in Unicode NFC and then its IDNA
/// A-label (UTS-46, which also lowercases and maps full-width forms to ASCII), never an IP
/// address; at most 254 octets in all. Two inputs with one normal form are one address
/// everywhere.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

/// A refusal before it names its field: a stable code and a message a person can read.
type Refusal = (&'static str, &'static str);

const REQUIRED: Refusal = ("required", "The email address is empty.");
const INVALID: Refusal = ("invalid", "This is not an email address.");
const TOO_LONG: Refusal = (
    "too_long",
    "The email address is longer than 254 characters once normalized (an international \
     domain counts in its xn-- form).",
);
const LOCAL_PART_TOO_LONG: Refusal = (
    "invalid",
    "The part before the @ is longer than 64 characters.",
);
const QUOTED_LOCAL_PART: Refusal = (
    "quoted_local_part",
    "Quoted local parts and backslash escapes are not accepted: write the address without \
     quotes or backslashes.",
);
const NON_ASCII_LOCAL_PART: Refusal = (
    "non_ascii_local_part",
    "The part before the @ may hold only ASCII letters, digits, dots, the symbols \
     ! # $ % & ' * + - / = ? ^ _ { | } ~ and the grave accent.",
);
const IP_DOMAIN: Refusal = (
    "ip_domain",
    "The part after the @ must be a domain name, not an IP address.",
);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, FieldProblem> {
        normal_form(raw)
            .map(Self)
            .map_err(|(code, message)| FieldProblem {
                field: "email",
                code,
                message: message.to_owned(),
            })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn normal_form(raw: &str) -> Result<String, Refusal> {
    let trimmed = raw.trim();
    if trimmed.len() > MAX_INPUT_OCTETS {
        return Err(TOO_LONG);
    }
    if trimmed.is_empty() {
        return Err(REQUIRED);
    }
    // A domain never holds an `@`, so the last one ends the local part (a quoted local part
    // may hold more, and is refused below for its quotes).
    let Some((local, domain)) = trimmed.rsplit_once('@') else {
        return Err(INVALID);
    };
    let address = format!("{}@{}", local_part(local)?, domain_name(domain)?);
    // Only now: lowercasing and the A-label may make an address longer than it was sent.
    if address.len() > MAX_OCTETS {
        return Err(TOO_LONG);
    }
    Ok(address)
}

/// The local part lowercased, if it is a dot-atom of ASCII characters. Quoting and escapes
/// are refused rather than unfolded: `"alice"` and `"\alice"` reach alice's mailbox, and
/// accepting them would give one mailbox many accounts and many send budgets.
fn local_part(local: &str) -> Result<String, Refusal> {
    if local.contains(['"', '\\']) {
        return Err(QUOTED_LOCAL_PART);
    }
    // Full-width and other look-alike letters are refused here, not mapped: nothing says how a
    // mail server folds a non-ASCII local part.
    if !local.is_ascii() {
        return Err(NON_ASCII_LOCAL_PART);
    }
    let is_atext = |b: u8| b.is_ascii_alphanumeric() || ATEXT_SYMBOLS.contains(&b);
    let dot_atom = local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext));
    if !dot_atom {
        return Err(INVALID);
    }
    if local.len() > MAX_LOCAL_OCTETS {
        return Err(LOCAL_PART_TOO_LONG);
    }
    Ok(local.to_ascii_lowercase())
}

/// The domain as a lowercase ASCII host name: NFC, then UTS-46 to its A-label with the
/// strict rules of DNS host names (letters, digits and inner hyphens; labels of at most 63
/// octets; at most 253 in all), refusing IP addresses in any spelling.
fn domain_name(domain: &str) -> Result<String, Refusal> {
    // A domain literal: `[10.0.0.5]`, `[IPv6:2001:db8::1]`.
    if domain.starts_with('[') || domain.ends_with(']') {
        return Err(IP_DOMAIN);
    }
    // UTS-46 composes to NFC as part of its mapping too; composing first keeps the contract's
    // NFC step explicit instead of resting on that detail of one crate.
    let composed: String = domain.nfc().collect();
    let ascii = Uts46::new()
        .to_ascii(
            composed.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Check,
            DnsLength::Verify,
        )
        .map_err(|_| INVALID)?;
    // Checked on the mapped name, so that full-width digits and ideographic full stops
    // cannot spell an IP address past it.
    if ends_in_a_number(&ascii) {
        return Err(IP_DOMAIN);
    }
    // A mailbox the world can reach: a name with at least two labels.
    if !ascii.contains('.') {
        return Err(INVALID);
    }
    Ok(ascii.into_owned())
}

/// Whether a host name would be read as an IPv4 address (the WHATWG URL standard's "ends in a
/// number"): its last label is decimal digits, or `0x` and hex digits. That covers `127.0.0.1`
/// and also `127.1` and `0x7f.1`, which resolvers take for 127.0.0.1; no top-level domain is
/// numeric, so no real name is refused.
fn ends_in_a_number(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or(host);
    let decimal = !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit());
    let hex = last
        .strip_prefix("0x")
        .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_hexdigit()));
    decimal || hex
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an input should become.
    enum Expect {
        Normal(&'static str),
        Refused(&'static str),
    }
    use Expect::{Normal, Refused};

    const BOB: &str = "bob@xn--bcher-kva.example";

    fn table() -> Vec<(String, Expect, &'static str)> {
        let row = |raw: &str, expect, why| (raw.to_owned(), expect, why);
        // 64 octets of local part and `n` octets of domain (`n` >= 140).
        let long = |n: usize| {
            let last = "d".repeat(n - 2 * 64 - 4);
            format!(
                "{}@{}.{}.{last}.com",
                "a".repeat(64),
                "b".repeat(63),
                "c".repeat(63)
            )
        };
        vec![
            row(
                "  Ada@Example.COM ",
                Normal("ada@example.com"),
                "trimmed and lowercased",
            ),
            row(
                "bob@b\u{fc}cher.example",
                Normal(BOB),
                "an international domain becomes its A-label",
            ),
            row(
                "bob@bu\u{308}cher.example",
                Normal(BOB),
                "a decomposed (NFD) domain is the same domain",
            ),
            row(BOB, Normal(BOB), "an A-label stays as it is"),
            row(
                "BOB@XN--BCHER-KVA.EXAMPLE",
                Normal(BOB),
                "an A-label is lowercased",
            ),
            row(
                "Bob@B\u{dc}CHER.Example",
                Normal(BOB),
                "an uppercase U-label is lowercased first",
            ),
            row(
                "alice@\u{ff45}\u{ff58}\u{ff41}\u{ff4d}\u{ff50}\u{ff4c}\u{ff45}.com",
                Normal("alice@example.com"),
                "full-width letters in a domain map to ASCII",
            ),
            row(
                "alice@example\u{3002}com",
                Normal("alice@example.com"),
                "an ideographic full stop separates labels",
            ),
            row(
                "max@stra\u{df}e.de",
                Normal("max@xn--strae-oqa.de"),
                "ß stays ß (non-transitional IDNA)",
            ),
            row(
                "o'brien+news@example.com",
                Normal("o'brien+news@example.com"),
                "every atext symbol is kept",
            ),
            row(
                "a.b.c@mail.example.co.uk",
                Normal("a.b.c@mail.example.co.uk"),
                "dots between atoms",
            ),
            row(
                "user@1e100.net",
                Normal("user@1e100.net"),
                "digits inside a domain name are fine",
            ),
            row(
                "ada@exa\u{ad}mple.com",
                Normal("ada@example.com"),
                "a soft hyphen in a domain is dropped",
            ),
            row(&long(189), Normal(""), "254 octets is the longest address"),
            row("", Refused("required"), "empty"),
            row("   ", Refused("required"), "only spaces"),
            row("ada", Refused("invalid"), "no @"),
            row("ada@", Refused("invalid"), "no domain"),
            row("@example.com", Refused("invalid"), "no local part"),
            row("ada@example", Refused("invalid"), "a domain without a dot"),
            row("ada@@example.com", Refused("invalid"), "two @"),
            row(
                "ada @example.com",
                Refused("invalid"),
                "a space in the local part",
            ),
            row(".ada@example.com", Refused("invalid"), "a leading dot"),
            row("ada.@example.com", Refused("invalid"), "a trailing dot"),
            row("a..da@example.com", Refused("invalid"), "two dots in a row"),
            row("ada(comment)@example.com", Refused("invalid"), "a comment"),
            row("ada@exa..mple.com", Refused("invalid"), "an empty label"),
            row(
                "ada@example.com.",
                Refused("invalid"),
                "a trailing dot on the domain",
            ),
            row(
                "ada@exa_mple.com",
                Refused("invalid"),
                "an underscore in a host name",
            ),
            row(
                "ada@-example.com",
                Refused("invalid"),
                "a label starting with a hyphen",
            ),
            row(
                &format!("ada@{}.com", "a".repeat(64)),
                Refused("invalid"),
                "a label over 63 octets",
            ),
            row(
                r#""alice"@example.com"#,
                Refused("quoted_local_part"),
                "a quoted local part",
            ),
            row(
                r#""\alice"@example.com"#,
                Refused("quoted_local_part"),
                "a quoted pair",
            ),
            row(
                r"al\ice@example.com",
                Refused("quoted_local_part"),
                "a backslash escape",
            ),
            row(
                r#""a@b"@example.com"#,
                Refused("quoted_local_part"),
                "an @ inside quotes",
            ),
            row(
                r#""\u{e4}d\u{e4}"@example.com"#,
                Refused("quoted_local_part"),
                "quotes are named before non-ASCII",
            ),
            row(
                "\u{e4}d\u{e4}@example.com",
                Refused("non_ascii_local_part"),
                "letters with diacritics",
            ),
            row(
                "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}@example.com",
                Refused("non_ascii_local_part"),
                "full-width letters in the local part",
            ),
            row(
                "\u{212a}elvin@example.com",
                Refused("non_ascii_local_part"),
                "the Kelvin sign, which NFC and lowercasing turn into k",
            ),
            row(
                "\u{130}stanbul@example.com",
                Refused("non_ascii_local_part"),
                "İ, which lowercases to two code points",
            ),
            row("user@127.0.0.1", Refused("ip_domain"), "an IPv4 address"),
            row(
                "user@[10.0.0.5]",
                Refused("ip_domain"),
                "an IPv4 domain literal",
            ),
            row(
                "user@[IPv6:2001:db8::1]",
                Refused("ip_domain"),
                "an IPv6 domain literal",
            ),
            row(
                "user@127.1",
                Refused("ip_domain"),
                "a shortened IPv4 address",
            ),
            row(
                "user@0x7F.0.0.1",
                Refused("ip_domain"),
                "hexadecimal IPv4 parts",
            ),
            row(
                "user@1.2.3.0x7f",
                Refused("ip_domain"),
                "a hexadecimal last part",
            ),
            row(
                "user@\u{ff11}\u{ff12}\u{ff17}\u{3002}0.0.1",
                Refused("ip_domain"),
                "full-width digits spelling 127.0.0.1",
            ),
            row(
                "user@10.0.0.256",
                Refused("ip_domain"),
                "numeric even when no address",
            ),
            row(&long(190), Refused("too_long"), "255 octets"),
            row(
                &format!("{}@example.com", "a".repeat(65)),
                Refused("invalid"),
                "a local part over 64 octets",
            ),
            row(
                &format!("{}@example.com", "a".repeat(250)),
                Refused("invalid"),
                "a local part far over 64 octets",
            ),
            row(
                &format!(
                    "bob@b\u{fc}cher.{}.{}.{}.{}.example",
                    "a".repeat(63),
                    "b".repeat(63),
                    "c".repeat(63),
                    "d".repeat(39)
                ),
                Refused("too_long"),
                "250 characters, 257 octets as A-labels",
            ),
            row(
                &format!("ada@exa{}mple.com", "\u{ad}".repeat(600)),
                Refused("too_long"),
                "input over 1024 octets, whatever it would map to",
            ),
        ]
    }

    #[test]
    fn each_input_becomes_its_normal_form_or_is_refused_with_its_reason() {
        for (raw, expect, why) in table() {
            let parsed = EmailAddress::parse(&raw);
            match expect {
                Normal("") => {
                    let address = parsed.unwrap_or_else(|p| panic!("{why}: {p:?}"));
                    assert_eq!(address.as_str().len(), MAX_OCTETS, "{why}");
                }
                Normal(normal) => {
                    let address = parsed.unwrap_or_else(|p| panic!("{why}: {p:?}"));
                    assert_eq!(address.as_str(), normal, "{why}");
                }
                Refused(code) => {
                    let problem = parsed.err().unwrap_or_else(|| panic!("{why}: accepted"));
                    assert_eq!((problem.field, problem.code), ("email", code), "{why}");
                    assert!(!problem.message.is_empty(), "{why}");
                }
            }
        }
    }

    #[test]
    fn a_normal_form_is_its_own_normal_form_and_a_deliverable_address() {
        for (raw, _, why) in table() {
            let Ok(address) = EmailAddress::parse(&raw) else {
                continue;
            };
            let again = EmailAddress::parse(address.as_str()).expect(why);
            assert_eq!(again, address, "{why}");
            assert!(address.as_str().is_ascii(), "{why}");
            assert!(
                address.as_str().parse::<lettre::Address>().is_ok(),
                "{why}: the mail worker can send to it"
            );
        }
    }
}
