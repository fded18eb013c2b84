//! `#[retry(...)]` and `#[timeout(...)]`: how often and how long a task may run.

use super::{Checked, Error, Place, invalid, parse_args, to_uint, wrong_type};
use crate::value::{Arg, DecoratorKind, Value};

/// `#[retry(times, minutes_between_retries)]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    /// Retries after the first attempt.
    pub times: u32,
    /// Pause before each retry, in minutes.
    pub minutes_between_retries: f64,
}

impl Default for Retry {
    /// Metaflow's defaults: 3 retries, 2 minutes apart.
    fn default() -> Retry {
        Retry {
            times: 3,
            minutes_between_retries: 2.0,
        }
    }
}

impl Retry {
    /// Checks the arguments of one `#[retry(...)]`.
    ///
    /// # Errors
    /// Every broken rule, each tied to its argument.
    pub fn parse(args: &[Arg]) -> Result<Retry, Vec<Error>> {
        let (r, errors) = parse_args(DecoratorKind::Retry, args, Retry::set);
        if errors.is_empty() {
            Ok(r)
        } else {
            Err(errors)
        }
    }

    fn set(&mut self, key: &str, v: &Value) -> Checked<()> {
        match key {
            "times" => {
                self.times = to_uint(key, v, "a whole number of retries, 0 or more", 1000)? as u32
            }
            "minutes_between_retries" => {
                let m = match v {
                    Value::Int(n) => *n as f64,
                    Value::Float(x) => *x,
                    _ => return Err(wrong_type(key, v, "a number of minutes, 0 or more")),
                };
                if !(0.0..=10_080.0).contains(&m) {
                    return Err(invalid(
                        key,
                        v,
                        "must be from 0 to 10080 minutes (one week)",
                    ));
                }
                self.minutes_between_retries = m;
            }
            other => unreachable!("parameter `{other}` is in the catalog but has no setter"),
        }
        Ok(())
    }
}

/// `#[timeout(seconds, minutes, hours)]`: the parts add up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeout {
    /// The whole duration in seconds, at least 1.
    pub seconds: u64,
}

impl Timeout {
    /// Checks the arguments of one `#[timeout(...)]`.
    ///
    /// # Errors
    /// Every broken rule; a total under one second is an error on the whole decorator.
    pub fn parse(args: &[Arg]) -> Result<Timeout, Vec<Error>> {
        let (t, mut errors): (Timeout, _) =
            parse_args(DecoratorKind::Timeout, args, |t: &mut Timeout, key, v| {
                let n = to_uint(key, v, "a whole number, 0 or more", 10_000_000)?;
                let unit = match key {
                    "seconds" => 1,
                    "minutes" => 60,
                    "hours" => 3600,
                    other => {
                        unreachable!("parameter `{other}` is in the catalog but has no setter")
                    }
                };
                t.seconds += n * unit;
                Ok(())
            });
        if errors.is_empty() && t.seconds < 1 {
            errors.push(Error {
                decorator: DecoratorKind::Timeout,
                arg: None,
                place: Place::Decorator,
                message: "#[timeout] must add up to at least 1 second; give seconds, minutes or hours, such as #[timeout(minutes = 30)]"
                    .into(),
            });
        }
        if errors.is_empty() {
            Ok(t)
        } else {
            Err(errors)
        }
    }
}
