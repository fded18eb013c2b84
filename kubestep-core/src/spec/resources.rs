//! `#[resources(...)]`: what a step needs wherever it runs, merged with `#[kubernetes]` by maximum.

use super::kubernetes::{cpu, gpu};
use super::{Checked, Error, invalid, parse_args, wrong_type};
use crate::quantity::{Cpu, Size, Unit};
use crate::value::{Arg, DecoratorKind, Value};

/// The arguments of `#[resources(...)]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourcesArgs {
    /// cpu.
    pub cpu: Option<Cpu>,
    /// memory (MB).
    pub memory: Option<Size>,
    /// disk (MB).
    pub disk: Option<Size>,
    /// GPUs.
    pub gpu: Option<u32>,
    /// shared memory (MiB).
    pub shared_memory: Option<Size>,
}

impl ResourcesArgs {
    /// Checks the arguments of one `#[resources(...)]`.
    ///
    /// # Errors
    /// Every broken rule, each tied to its argument.
    pub fn parse(args: &[Arg]) -> Result<ResourcesArgs, Vec<Error>> {
        let (r, errors) = parse_args(DecoratorKind::Resources, args, ResourcesArgs::set);
        if errors.is_empty() {
            Ok(r)
        } else {
            Err(errors)
        }
    }

    fn set(&mut self, key: &str, v: &Value) -> Checked<()> {
        let size = |unit| match v {
            Value::Int(_) | Value::Str(_) | Value::Float(_) => {
                Size::from_value(v, unit).map_err(|r| invalid(key, v, &r))
            }
            _ => Err(wrong_type(key, v, "a size")),
        };
        match key {
            "cpu" => self.cpu = Some(cpu(key, v)?),
            "memory" => self.memory = Some(size(Unit::Megabytes)?),
            "disk" => self.disk = Some(size(Unit::Megabytes)?),
            "gpu" => self.gpu = Some(gpu(key, v)?),
            "shared_memory" => self.shared_memory = Some(size(Unit::Mebibytes)?),
            other => unreachable!("parameter `{other}` is in the catalog but has no setter"),
        }
        Ok(())
    }
}
