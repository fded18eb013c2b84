//! The executable that pods re-launch: its sha256 (its address in the datastore) and the
//! `kubernetes.io/arch` its ELF header names. A non-Linux executable is refused with the fix.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// What the Job needs to know about the executable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executable {
    /// Where it is.
    pub path: PathBuf,
    /// sha256, lower-case hex.
    pub sha256: String,
    /// `kubernetes.io/arch` value, such as `amd64`.
    pub arch: &'static str,
    /// The newest glibc symbol version it needs (`GLIBC_2.N` -> `(2, N)`), if it links glibc.
    pub glibc: Option<(u32, u32)>,
}

/// The newest `GLIBC_x.y` version named in `bytes`, only counting names that end inside it.
fn glibc_in(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut newest = None;
    for at in memchr::memmem::find_iter(bytes, b"GLIBC_") {
        let rest = &bytes[at + 6..];
        let end = rest
            .iter()
            .position(|b| !(b.is_ascii_digit() || *b == b'.'));
        let Some(end) = end else { continue };
        let text = std::str::from_utf8(&rest[..end]).unwrap_or("");
        let mut parts = text.split('.').map(|p| p.parse::<u32>());
        if let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) {
            newest = newest.max(Some((major, minor)));
        }
    }
    newest
}

/// The executable cannot run in a Linux pod, or cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading failed.
    #[error("cannot read the executable {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not a Linux executable.
    #[error(
        "{} is {found}, but pods run Linux executables: run the flow from a Linux machine (a VM, a container, CI), or build a Linux one (`cargo zigbuild --release --target x86_64-unknown-linux-gnu.2.36`, or `cross build`), bake it into the step image and name its path in KUBESTEP_KUBERNETES_BINARY_IN_IMAGE (README: \"Building for the cluster\")",
        path.display()
    )]
    NotLinux {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        found: String,
    },
}

/// The `kubernetes.io/arch` of an ELF header, or what the file is instead.
pub fn elf_arch(header: &[u8]) -> Result<&'static str, String> {
    match header {
        [0x7f, b'E', b'L', b'F', ..] => {}
        [0xcf, 0xfa, 0xed, 0xfe, ..]
        | [0xfe, 0xed, 0xfa, 0xcf, ..]
        | [0xca, 0xfe, 0xba, 0xbe, ..] => {
            return Err("a macOS (Mach-O) executable".into());
        }
        [b'M', b'Z', ..] => return Err("a Windows (PE) executable".into()),
        _ => return Err("not an executable kubestep recognises (no ELF header)".into()),
    }
    if header.len() < 20 {
        return Err("a truncated ELF file".into());
    }
    // EI_OSABI 0 (System V) and 3 (GNU/Linux) are what Linux toolchains emit.
    if !matches!(header[7], 0 | 3) {
        return Err(format!(
            "an ELF executable for another operating system (OS ABI {})",
            header[7]
        ));
    }
    let little = header[5] == 1;
    let machine = if little {
        u16::from_le_bytes([header[18], header[19]])
    } else {
        u16::from_be_bytes([header[18], header[19]])
    };
    let is64 = header[4] == 2;
    Ok(match (machine, is64, little) {
        (62, true, _) => "amd64",
        (183, true, _) => "arm64",
        (40, false, _) => "arm",
        (3, false, _) => "386",
        (243, true, _) => "riscv64",
        (21, true, true) => "ppc64le",
        (22, true, false) => "s390x",
        _ => {
            return Err(format!(
                "an ELF executable for a machine kubestep cannot map to a Kubernetes architecture (e_machine {machine})"
            ));
        }
    })
}

/// Hashes and checks an executable.
///
/// # Errors
/// The file cannot be read, or is not a Linux executable.
pub fn inspect(path: &Path) -> Result<Executable, Error> {
    let read = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read)?;
    let mut hasher = Sha256::new();
    let mut header = Vec::new();
    // Each read lands after the last bytes of the one before, so a version name split across
    // two reads is still seen whole.
    const OVERLAP: usize = 32;
    let mut buf = vec![0u8; OVERLAP + (1 << 20)];
    let mut kept = 0;
    let mut glibc = None;
    loop {
        let n = file.read(&mut buf[kept..]).map_err(read)?;
        if n == 0 {
            break;
        }
        let fresh = &buf[kept..kept + n];
        if header.len() < 64 {
            header.extend_from_slice(&fresh[..n.min(64 - header.len())]);
        }
        hasher.update(fresh);
        glibc = glibc.max(glibc_in(&buf[..kept + n]));
        let keep = (kept + n).min(OVERLAP);
        buf.copy_within(kept + n - keep..kept + n, 0);
        kept = keep;
    }
    let arch = elf_arch(&header).map_err(|found| Error::NotLinux {
        path: path.to_path_buf(),
        found,
    })?;
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Executable {
        path: path.to_path_buf(),
        sha256,
        arch,
        glibc,
    })
}

/// The running executable.
///
/// # Errors
/// As [`inspect`].
pub fn current() -> Result<Executable, Error> {
    let path = std::env::current_exe().map_err(|source| Error::Read {
        path: PathBuf::from("(current executable)"),
        source,
    })?;
    inspect(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_is_a_linux_elf() {
        let exe = current().unwrap();
        assert_eq!(exe.sha256.len(), 64);
        assert_eq!(
            exe.arch,
            if cfg!(target_arch = "x86_64") {
                "amd64"
            } else {
                exe.arch
            }
        );
    }

    #[test]
    fn the_newest_glibc_version_is_found() {
        assert_eq!(
            glibc_in(b"\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_2.17\0"),
            Some((2, 34))
        );
        assert_eq!(glibc_in(b"no glibc here"), None);
        // Cut off at the end of a read: not counted until the rest arrives.
        assert_eq!(glibc_in(b"GLIBC_2.3"), None);
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(
                current().unwrap().glibc.is_some(),
                "a glibc test binary names GLIBC_"
            );
        }
    }

    #[test]
    fn other_formats_are_refused_with_the_fix() {
        assert!(
            elf_arch(&[0xcf, 0xfa, 0xed, 0xfe, 0, 0])
                .unwrap_err()
                .contains("macOS")
        );
        assert!(elf_arch(b"MZ\x90\x00").unwrap_err().contains("Windows"));
        let mut aarch64 = [0u8; 20];
        aarch64[..4].copy_from_slice(b"\x7fELF");
        aarch64[4] = 2;
        aarch64[5] = 1;
        aarch64[18] = 183;
        assert_eq!(elf_arch(&aarch64), Ok("arm64"));
        // What a newcomer on macOS meets: the file, what it is, and the two ways that work.
        let path = std::env::temp_dir().join(format!("kubestep-macho-{}", std::process::id()));
        std::fs::write(&path, [0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1]).unwrap();
        let e = inspect(&path).unwrap_err().to_string();
        let _ = std::fs::remove_file(&path);
        assert!(
            e.starts_with(&format!("{} is a macOS (Mach-O) executable, but pods run Linux executables: run the flow from a Linux machine", path.display()))
                && e.contains("cargo zigbuild --release --target x86_64-unknown-linux-gnu.2.36")
                && e.contains("KUBESTEP_KUBERNETES_BINARY_IN_IMAGE"),
            "{e}"
        );
    }
}
