//! Kubernetes quantities for cpu and sizes: checked once, rendered exactly as the user meant.
//!
//! Integers stay integers (`memory = 4096` renders `"4096M"`, never `"4096.0M"`), and a quantity
//! string such as `"16Gi"` renders as written once it is known to be valid.

use crate::value::Value;
use std::fmt;

/// A million cores: far above any node, far below where quantities overflow.
const MAX_MILLICORES: u64 = 1_000_000_000;

/// A cpu request: `2`, `0.5` or `"500m"`, kept as written and as millicores for comparisons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpu {
    millis: u64,
    text: String,
}

impl Cpu {
    /// Reads a cpu value; the error is the rule it breaks.
    pub fn from_value(value: &Value) -> Result<Cpu, String> {
        const RULE: &str = "cpu must be greater than 0 and at most 1000000, a multiple of 0.001 (1m), written as a number or a string such as \"500m\"";
        let (millis, text) = match value {
            Value::Int(n) if *n > 0 => (
                u64::try_from(*n).ok().and_then(|n| n.checked_mul(1000)),
                n.to_string(),
            ),
            Value::Float(x) if *x > 0.0 && x.is_finite() => {
                let m = x * 1000.0;
                let exact = (m - m.round()).abs() < 1e-6 && m.round() >= 1.0;
                (exact.then_some(m.round() as u64), x.to_string())
            }
            Value::Str(s) => (parse_cpu_str(s), s.to_string()),
            _ => (None, String::new()),
        };
        match millis {
            Some(m) if m > 0 && m <= MAX_MILLICORES => Ok(Cpu { millis: m, text }),
            _ => Err(RULE.to_string()),
        }
    }

    /// Millicores, for taking the maximum of two requests.
    pub fn millis(&self) -> u64 {
        self.millis
    }

    /// The quantity string Kubernetes receives.
    pub fn quantity(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_cpu_str(s: &str) -> Option<u64> {
    if let Some(m) = s.strip_suffix('m') {
        return digits(m).and_then(|n| n.parse().ok());
    }
    let (int, frac) = split_decimal(s)?;
    if frac.len() > 3 {
        return None;
    }
    let frac_millis: u64 = format!("{frac:0<3}").parse().ok()?;
    int.parse::<u64>()
        .ok()?
        .checked_mul(1000)?
        .checked_add(frac_millis)
}

fn digits(s: &str) -> Option<&str> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

/// Splits `"12.5"` into `("12", "5")`; `"12"` into `("12", "")`.
fn split_decimal(s: &str) -> Option<(&str, &str)> {
    match s.split_once('.') {
        Some((i, f)) => Some((digits(i)?, digits(f)?)),
        None => Some((digits(s)?, "")),
    }
}

/// What a bare number means for a size parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Megabytes (10^6 bytes): memory and disk, rendered `"<n>M"`.
    Megabytes,
    /// Mebibytes (2^20 bytes): shared_memory and tmpfs_size, rendered `"<n>Mi"`.
    Mebibytes,
}

impl Unit {
    fn bytes(self) -> u128 {
        match self {
            Unit::Megabytes => 1_000_000,
            Unit::Mebibytes => 1 << 20,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Unit::Megabytes => "M",
            Unit::Mebibytes => "Mi",
        }
    }

    /// How error messages name a bare number of this unit.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Megabytes => "MB",
            Unit::Mebibytes => "MiB",
        }
    }
}

/// A size: a whole number in the parameter's unit, or a quantity string such as `"16Gi"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Size {
    bytes: u128,
    text: String,
    number: Option<u64>,
}

const SUFFIXES: [(&str, u128); 13] = [
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("Pi", 1 << 50),
    ("Ei", 1 << 60),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("E", 1_000_000_000_000_000_000),
    ("", 1),
];

impl Size {
    /// Reads a size in `unit`; the error is the rule it breaks.
    pub fn from_value(value: &Value, unit: Unit) -> Result<Size, String> {
        let rule = || {
            format!(
                "must be a whole number of {} greater than 0, or a quantity string greater than 0 such as \"16Gi\" or \"500M\" (suffixes Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E)",
                unit.name()
            )
        };
        match value {
            Value::Int(n) if *n > 0 => Ok(Size::from_number(*n as u64, unit)),
            Value::Str(s) => parse_size_str(s)
                .filter(|b| *b > 0)
                .map(|bytes| Size {
                    bytes,
                    text: s.to_string(),
                    number: None,
                })
                .ok_or_else(rule),
            _ => Err(rule()),
        }
    }

    /// A whole number of `unit`.
    pub fn from_number(n: u64, unit: Unit) -> Size {
        Size {
            bytes: n as u128 * unit.bytes(),
            text: format!("{n}{}", unit.suffix()),
            number: Some(n),
        }
    }

    /// Size in bytes, for taking the maximum of two values.
    pub fn bytes(&self) -> u128 {
        self.bytes
    }

    /// The quantity string Kubernetes receives.
    pub fn quantity(&self) -> &str {
        &self.text
    }

    /// Half of this size as whole MiB, at least 1: the default tmpfs size. A bare number is read
    /// as MiB, as Metaflow does (memory 9000 gives 4500Mi).
    pub fn half_as_mebibytes(&self) -> Size {
        let half = match self.number {
            Some(n) => n / 2,
            None => (self.bytes / 2 / (1 << 20)).min(u64::MAX as u128) as u64,
        };
        Size::from_number(half.max(1), Unit::Mebibytes)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_size_str(s: &str) -> Option<u128> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let (_, mult) = SUFFIXES.iter().find(|(sfx, _)| *sfx == suffix)?;
    let (int, frac) = split_decimal(number)?;
    if frac.len() > 18 || int.len() > 30 {
        return None;
    }
    let scale = 10u128.pow(frac.len() as u32);
    let mantissa =
        int.parse::<u128>()
            .ok()?
            .checked_mul(scale)?
            .checked_add(if frac.is_empty() {
                0
            } else {
                frac.parse().ok()?
            })?;
    // Kubernetes rounds a fractional byte count up.
    Some(mantissa.checked_mul(*mult)?.div_ceil(scale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn s(x: &str) -> Value {
        Value::Str(Cow::Owned(x.into()))
    }

    #[test]
    fn cpu_forms() {
        assert_eq!(Cpu::from_value(&Value::Int(2)).unwrap().quantity(), "2");
        assert_eq!(Cpu::from_value(&Value::Float(0.5)).unwrap().millis(), 500);
        assert_eq!(Cpu::from_value(&s("250m")).unwrap().millis(), 250);
        assert_eq!(Cpu::from_value(&s("1.5")).unwrap().millis(), 1500);
        for bad in [
            Value::Int(0),
            Value::Int(-1),
            Value::Float(0.0001),
            s("abc"),
            s("1.2345"),
            Value::Bool(true),
        ] {
            assert!(Cpu::from_value(&bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn sizes_keep_integers_and_compare_by_bytes() {
        let m = Size::from_value(&Value::Int(4096), Unit::Megabytes).unwrap();
        assert_eq!(m.quantity(), "4096M");
        let gi = Size::from_value(&s("16Gi"), Unit::Megabytes).unwrap();
        assert_eq!(gi.bytes(), 16 << 30);
        assert!(gi.bytes() > m.bytes());
        assert_eq!(
            Size::from_value(&s("1.5Gi"), Unit::Megabytes)
                .unwrap()
                .bytes(),
            3 << 29
        );
        for bad in [
            Value::Int(0),
            s("16GB"),
            s("-1Gi"),
            s(""),
            s("0"),
            Value::Float(1.5),
        ] {
            assert!(
                Size::from_value(&bad, Unit::Megabytes).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn tmpfs_default_is_half_the_memory_number_in_mib() {
        assert_eq!(
            Size::from_number(9000, Unit::Megabytes)
                .half_as_mebibytes()
                .quantity(),
            "4500Mi"
        );
        assert_eq!(
            Size::from_value(&s("16Gi"), Unit::Megabytes)
                .unwrap()
                .half_as_mebibytes()
                .quantity(),
            "8192Mi"
        );
        assert_eq!(
            Size::from_number(1, Unit::Megabytes)
                .half_as_mebibytes()
                .quantity(),
            "1Mi"
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn quantity_strings_never_panic(s in "[0-9.]{0,40}[a-zA-Z]{0,3}") {
            let v = Value::string(&s);
            let _ = Cpu::from_value(&v);
            if let Ok(size) = Size::from_value(&v, Unit::Megabytes) {
                prop_assert!(size.bytes() > 0);
                prop_assert_eq!(size.quantity(), s.as_str());
            }
        }

        #[test]
        fn whole_numbers_render_as_written(n in 1i64..i64::MAX / 2_000_000) {
            let size = Size::from_value(&Value::Int(n), Unit::Megabytes).unwrap();
            prop_assert_eq!(size.quantity(), format!("{n}M"));
        }
    }
}
