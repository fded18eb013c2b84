//! `#[resources(...)]`: what a step needs wherever it runs, merged with `#[kubernetes]` by maximum.

use super::kubernetes::{cpu, gpu, size};
use super::{Checked, Error, parse_args};
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
        match key {
            "cpu" => self.cpu = Some(cpu(key, v)?),
            "memory" => self.memory = Some(size(key, v, Unit::Megabytes)?),
            "disk" => self.disk = Some(size(key, v, Unit::Megabytes)?),
            "gpu" => self.gpu = Some(gpu(key, v)?),
            "shared_memory" => self.shared_memory = Some(size(key, v, Unit::Mebibytes)?),
            other => unreachable!("parameter `{other}` is in the catalog but has no setter"),
        }
        Ok(())
    }
}
