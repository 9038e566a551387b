//! `CUDA_VISIBLE_DEVICES=RR…`: round-robin assignment of GPU devices to the replicas of a
//! Deployment, as Jina's `Deployment._roundrobin_cuda_device` does.
//!
//! A value that does not start with `RR` is passed to every replica unchanged; this module only
//! says so (`Ok(None)`). After `RR` comes the spec, optionally wrapped in `[` `]`:
//!
//! - empty (`RR`, `RR[]`): every device, `0..n`;
//! - a Python slice `start:stop[:step]` over `range(n)`, with omitted bounds and negative
//!   indices (`RR0:2`, `RR1:`, `RR::2`, `RR-2:`, `RR::-1`);
//! - a single integer `k`: the device at Python index `k` (`RR-1` is the last device; Jina's
//!   `k:k+1` would select nothing for `-1`);
//! - a comma list of device ids `1,3`: exactly those ids, in that order, whatever `n` is;
//! - a list (or a single item) where some item is not an integer, such as GPU UUIDs
//!   `GPU-0aaaaaaa-…,GPU-0bbbbbbb-…`: the items as written, trimmed.
//!
//! Replica `j` gets the `j`-th item of the selection, cycled. `n` comes from
//! [`detect_device_count`]; the empty, slice and single-index specs select from `range(n)` and
//! so are off (`Ok(None)`) when `n == 0`, while explicit lists name their devices themselves and
//! are honoured whatever `n` is (Jina turns the whole feature off when `n == 0`).
//!
//! A malformed spec is an error ([`GpuError`]), whatever `n` is, and is never silently ignored.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The prefix that asks for round-robin assignment.
const PREFIX: &str = "RR";

/// The environment variable read when `nvidia-smi -L` cannot run.
const TOTAL_DEVICES_ENV: &str = "CUDA_TOTAL_DEVICES";

/// How long `nvidia-smi -L` may take before it is given up on (a wedged driver can hang it).
const NVIDIA_SMI_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a `CUDA_VISIBLE_DEVICES=RR…` value is malformed. Each message quotes the whole value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GpuError {
    /// A `[` without its closing `]`, or the other way round, or a bracket inside the spec.
    #[error("invalid CUDA_VISIBLE_DEVICES {spec:?}: unbalanced or misplaced brackets")]
    Brackets { spec: String },
    /// A slice with more than three parts, such as `1:2:3:4`.
    #[error("invalid CUDA_VISIBLE_DEVICES {spec:?}: a slice is `start:stop[:step]`")]
    SliceShape { spec: String },
    /// A slice bound or step that is not an integer, such as the `x` of `RRx:2`.
    #[error("invalid CUDA_VISIBLE_DEVICES {spec:?}: slice part {part:?} is not an integer")]
    SliceBound { spec: String, part: String },
    /// A slice with step 0.
    #[error("invalid CUDA_VISIBLE_DEVICES {spec:?}: slice step cannot be zero")]
    ZeroStep { spec: String },
    /// An empty item in a comma list, such as `RR1,,3` or `RR1,`.
    #[error("invalid CUDA_VISIBLE_DEVICES {spec:?}: empty item in the device list")]
    EmptyItem { spec: String },
    /// A negative device id in a list (only a single index or a slice may count from the end).
    #[error("invalid CUDA_VISIBLE_DEVICES {spec:?}: device id {item:?} is negative")]
    NegativeId { spec: String, item: String },
    /// An item that is neither an integer nor a device name such as `GPU-<uuid>`.
    #[error(
        "invalid CUDA_VISIBLE_DEVICES {spec:?}: {item:?} is neither a device id nor a device \
         name such as GPU-<uuid>"
    )]
    BadItem { spec: String, item: String },
    /// A slice or index that selects none of the `device_count` devices.
    #[error("CUDA_VISIBLE_DEVICES {spec:?} selects none of the {device_count} devices")]
    NoDevice { spec: String, device_count: usize },
}

/// A parsed spec (what follows `RR`).
#[derive(Debug, Clone, PartialEq)]
enum Spec {
    /// Every device.
    All,
    /// A Python slice over `range(device_count)`.
    Slice {
        start: Option<i64>,
        stop: Option<i64>,
        step: Option<i64>,
    },
    /// A Python index into `range(device_count)`.
    Index(i64),
    /// Device ids or names, used as they are.
    List(Vec<String>),
}

/// Parses `value` (the whole `CUDA_VISIBLE_DEVICES` value) and assigns a device to each of
/// `replicas` replicas: replica `j` gets item `j` of the cycled selection.
///
/// Returns `Ok(None)` when `value` does not start with `RR`, or when the spec selects from the
/// device range (empty, slice or single index) and `device_count == 0`; the caller should then
/// warn that round-robin is off. Explicit lists (`RR1,3`, `RRGPU-…`) need no device count. With
/// `replicas == 0` the result is `Ok(Some(vec![]))`. A malformed spec, or a slice or index that
/// selects nothing, is an error.
pub fn assign_devices(
    value: &str,
    replicas: usize,
    device_count: usize,
) -> Result<Option<Vec<String>>, GpuError> {
    let Some(spec) = parse(value)? else {
        return Ok(None);
    };
    let selected: Vec<String> = match spec {
        Spec::List(items) => items,
        _ if device_count == 0 => return Ok(None),
        Spec::All => (0..device_count).map(|d| d.to_string()).collect(),
        Spec::Slice { start, stop, step } => slice_indices(device_count, start, stop, step)
            .into_iter()
            .map(|d| d.to_string())
            .collect(),
        Spec::Index(k) => python_index(device_count, k)
            .map(|d| vec![d.to_string()])
            .unwrap_or_default(),
    };
    if selected.is_empty() {
        return Err(GpuError::NoDevice {
            spec: value.to_string(),
            device_count,
        });
    }
    Ok(Some(
        selected.iter().cycle().take(replicas).cloned().collect(),
    ))
}

/// Checks the shape of `value` without knowing the devices: `Ok(())` for any value that does not
/// start with `RR`, and for every `RR…` value that [`assign_devices`] could accept. A slice or
/// index that turns out to select nothing is only found by [`assign_devices`].
pub fn check_spec(value: &str) -> Result<(), GpuError> {
    parse(value).map(|_| ())
}

/// The number of GPU devices: the number of `UUID`s that `nvidia-smi -L` prints when it runs and
/// succeeds, else the integer in `CUDA_TOTAL_DEVICES`, else 0. Never panics; a missing, failing or
/// hung (after 10 s) `nvidia-smi` is normal and falls back to the environment.
pub fn detect_device_count() -> usize {
    match run_nvidia_smi() {
        Some(output) => count_uuids(&output),
        None => parse_total_devices(std::env::var(TOTAL_DEVICES_ENV).ok().as_deref()),
    }
}

/// The number of devices listed in `nvidia-smi -L` output: the occurrences of `UUID`, as Jina
/// counts them.
fn count_uuids(output: &str) -> usize {
    output.matches("UUID").count()
}

/// The device count in a `CUDA_TOTAL_DEVICES` value; 0 when unset, not an integer or negative.
fn parse_total_devices(value: Option<&str>) -> usize {
    value.and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// The standard output of `nvidia-smi -L`, or `None` if it cannot start, fails or times out.
fn run_nvidia_smi() -> Option<String> {
    let mut child = Command::new("nvidia-smi")
        .arg("-L")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // Read on a thread so that a large output cannot fill the pipe and stall the child.
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).ok().map(|_| out)
    });
    let deadline = Instant::now() + NVIDIA_SMI_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    // After a timeout the reader is left detached: a grandchild could still hold the pipe open.
    if status?.success() {
        reader.join().ok().flatten()
    } else {
        None
    }
}

/// Parses a whole `CUDA_VISIBLE_DEVICES` value: `None` when it does not start with `RR`.
fn parse(value: &str) -> Result<Option<Spec>, GpuError> {
    let Some(rest) = value.strip_prefix(PREFIX) else {
        return Ok(None);
    };
    parse_spec(value, rest.trim()).map(Some)
}

/// Parses the spec after `RR`; `value` is the whole value, for error messages.
fn parse_spec(value: &str, spec: &str) -> Result<Spec, GpuError> {
    let err_spec = || value.to_string();
    let spec = match (spec.strip_prefix('['), spec.ends_with(']')) {
        (Some(inner), true) => inner.strip_suffix(']').unwrap_or(inner).trim(),
        (None, false) => spec,
        _ => return Err(GpuError::Brackets { spec: err_spec() }),
    };
    if spec.contains(['[', ']']) {
        return Err(GpuError::Brackets { spec: err_spec() });
    }
    if spec.is_empty() {
        return Ok(Spec::All);
    }
    if spec.contains(',') {
        return parse_list(value, spec);
    }
    if spec.contains(':') {
        return parse_slice(value, spec);
    }
    match spec.parse::<i64>() {
        Ok(k) => Ok(Spec::Index(k)),
        Err(_) => parse_list(value, spec),
    }
}

/// Parses `start:stop[:step]`, each part an optional integer; the step cannot be 0.
fn parse_slice(value: &str, spec: &str) -> Result<Spec, GpuError> {
    let parts: Vec<&str> = spec.split(':').map(str::trim).collect();
    if parts.len() > 3 {
        return Err(GpuError::SliceShape {
            spec: value.to_string(),
        });
    }
    let mut bounds = [None; 3];
    for (bound, part) in bounds.iter_mut().zip(&parts) {
        if !part.is_empty() {
            *bound = Some(part.parse::<i64>().map_err(|_| GpuError::SliceBound {
                spec: value.to_string(),
                part: part.to_string(),
            })?);
        }
    }
    let [start, stop, step] = bounds;
    if step == Some(0) {
        return Err(GpuError::ZeroStep {
            spec: value.to_string(),
        });
    }
    Ok(Spec::Slice { start, stop, step })
}

/// Parses a comma list (or a single non-integer item). When every item is an integer the ids are
/// normalised (`01` is `1`) and must not be negative; otherwise the trimmed items are kept as
/// written, and each non-integer must look like a device name (`GPU-<uuid>`, `MIG-…`).
fn parse_list(value: &str, spec: &str) -> Result<Spec, GpuError> {
    let items: Vec<&str> = spec.split(',').map(str::trim).collect();
    let mut ids = Vec::with_capacity(items.len());
    for item in &items {
        if item.is_empty() {
            return Err(GpuError::EmptyItem {
                spec: value.to_string(),
            });
        }
        match item.parse::<i64>() {
            Ok(id) if id < 0 => {
                return Err(GpuError::NegativeId {
                    spec: value.to_string(),
                    item: item.to_string(),
                });
            }
            Ok(id) => ids.push(Some(id)),
            Err(_) if is_device_name(item) => ids.push(None),
            Err(_) => {
                return Err(GpuError::BadItem {
                    spec: value.to_string(),
                    item: item.to_string(),
                });
            }
        }
    }
    let list = if ids.iter().all(Option::is_some) {
        ids.into_iter().flatten().map(|id| id.to_string()).collect()
    } else {
        items.into_iter().map(str::to_string).collect()
    };
    Ok(Spec::List(list))
}

/// Whether `item` looks like a device name: an ASCII letter, then letters, digits, `-`, `_`, `.`
/// or `/` (GPU UUIDs `GPU-…`, MIG names `MIG-GPU-…/1/0`).
fn is_device_name(item: &str) -> bool {
    let mut chars = item.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// The device at Python index `k` of `range(n)`, if any.
fn python_index(n: usize, k: i64) -> Option<usize> {
    let n = i128::try_from(n).unwrap_or(i128::MAX);
    let k = i128::from(k);
    let k = if k < 0 { k + n } else { k };
    if (0..n).contains(&k) {
        usize::try_from(k).ok()
    } else {
        None
    }
}

/// `range(n)[start:stop:step]` with Python's rules (`slice.indices`); `step` is not 0.
fn slice_indices(n: usize, start: Option<i64>, stop: Option<i64>, step: Option<i64>) -> Vec<usize> {
    let n = i128::try_from(n).unwrap_or(i128::MAX);
    let step = i128::from(step.unwrap_or(1));
    let (lower, upper) = if step < 0 { (-1, n - 1) } else { (0, n) };
    let clamp = |bound: Option<i64>, default: i128| match bound.map(i128::from) {
        None => default,
        Some(b) if b < 0 => (b + n).max(lower),
        Some(b) => b.min(upper),
    };
    let start = clamp(start, if step < 0 { upper } else { lower });
    let stop = clamp(stop, if step < 0 { lower } else { upper });
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        if let Ok(d) = usize::try_from(i) {
            out.push(d);
        }
        i += step;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUIDS: [&str; 4] = [
        "GPU-0aaaaaaa-74d2-7297-d557-12771b6a79d5",
        "GPU-0bbbbbbb-74d2-7297-d557-12771b6a79d5",
        "GPU-0ccccccc-74d2-7297-d557-12771b6a79d5",
        "GPU-0ddddddd-74d2-7297-d557-12771b6a79d5",
    ];

    fn assign(value: &str, devices: usize) -> Option<Vec<String>> {
        match assign_devices(value, 5, devices) {
            Ok(result) => result,
            Err(e) => panic!("{value}: {e}"),
        }
    }

    fn strs(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    fn ids(items: &[usize]) -> Option<Vec<String>> {
        Some(items.iter().map(|d| d.to_string()).collect())
    }

    // The seed's tables, 5 replicas each.

    #[test]
    fn rr_uses_every_device() {
        assert_eq!(assign("RR", 3), ids(&[0, 1, 2, 0, 1]));
    }

    #[test]
    fn rr_slice() {
        assert_eq!(assign("RR0:2", 3), ids(&[0, 1, 0, 1, 0]));
    }

    #[test]
    fn rr_list_of_ids_with_any_device_count() {
        for devices in [0, 1, 4, 8] {
            assert_eq!(assign("RR1,3", devices), ids(&[1, 3, 1, 3, 1]), "{devices}");
        }
    }

    #[test]
    fn rr_list_of_uuids_with_any_device_count() {
        let value = format!("RR{}", UUIDS.join(","));
        let expected = strs(&[UUIDS[0], UUIDS[1], UUIDS[2], UUIDS[3], UUIDS[0]]);
        for devices in [0, 4] {
            assert_eq!(assign(&value, devices), expected, "{devices}");
        }
    }

    // Values that are not round-robin, and round-robin without devices.

    #[test]
    fn non_rr_values_are_left_alone() {
        for value in [
            "",
            "0",
            "0,1",
            "all",
            "rr0:2",
            " RR0:2",
            "GPU-0aaaaaaa",
            "R",
        ] {
            assert_eq!(assign_devices(value, 5, 4), Ok(None), "{value:?}");
            assert_eq!(check_spec(value), Ok(()), "{value:?}");
        }
    }

    #[test]
    fn ranges_need_devices() {
        for value in ["RR", "RR[]", "RR0:2", "RR::2", "RR-1", "RR0"] {
            assert_eq!(assign_devices(value, 5, 0), Ok(None), "{value}");
        }
    }

    #[test]
    fn bad_specs_fail_even_without_devices() {
        assert!(assign_devices("RRx:2", 5, 0).is_err());
        assert!(assign_devices("RR1,,3", 5, 0).is_err());
    }

    // Slices and indices.

    #[test]
    fn slices_follow_python() {
        let cases: &[(&str, usize, &[usize])] = &[
            ("RR1:", 4, &[1, 2, 3, 1, 2]),
            ("RR:2", 4, &[0, 1, 0, 1, 0]),
            ("RR::2", 5, &[0, 2, 4, 0, 2]),
            ("RR1::2", 6, &[1, 3, 5, 1, 3]),
            ("RR-2:", 4, &[2, 3, 2, 3, 2]),
            ("RR:-1", 3, &[0, 1, 0, 1, 0]),
            ("RR-3:-1", 4, &[1, 2, 1, 2, 1]),
            ("RR::-1", 3, &[2, 1, 0, 2, 1]),
            ("RR2:0:-1", 3, &[2, 1, 2, 1, 2]),
            ("RR0:100", 2, &[0, 1, 0, 1, 0]),
            ("RR-100:1", 3, &[0, 0, 0, 0, 0]),
            ("RR:", 3, &[0, 1, 2, 0, 1]),
            ("RR::", 2, &[0, 1, 0, 1, 0]),
            ("RR 0 : 2 ", 3, &[0, 1, 0, 1, 0]),
        ];
        for (value, devices, expected) in cases {
            assert_eq!(assign(value, *devices), ids(expected), "{value}");
        }
    }

    #[test]
    fn single_index() {
        assert_eq!(assign("RR1", 3), ids(&[1; 5]));
        assert_eq!(assign("RR0", 1), ids(&[0; 5]));
        assert_eq!(assign("RR-1", 3), ids(&[2; 5]));
        assert_eq!(assign("RR-3", 3), ids(&[0; 5]));
        assert_eq!(assign("RR+2", 3), ids(&[2; 5]));
    }

    #[test]
    fn brackets() {
        assert_eq!(assign("RR[0:2]", 3), ids(&[0, 1, 0, 1, 0]));
        assert_eq!(assign("RR[]", 3), ids(&[0, 1, 2, 0, 1]));
        assert_eq!(assign("RR[1,3]", 0), ids(&[1, 3, 1, 3, 1]));
        assert_eq!(assign("RR[-1]", 4), ids(&[3; 5]));
        assert_eq!(assign("RR[ ::2 ]", 3), ids(&[0, 2, 0, 2, 0]));
    }

    #[test]
    fn nothing_selected_is_an_error() {
        for (value, devices) in [
            ("RR3", 3),
            ("RR-4", 3),
            ("RR2:2", 3),
            ("RR5:", 3),
            ("RR0:2:-1", 3),
        ] {
            assert_eq!(
                assign_devices(value, 5, devices),
                Err(GpuError::NoDevice {
                    spec: value.to_string(),
                    device_count: devices
                }),
                "{value}"
            );
            assert_eq!(check_spec(value), Ok(()), "{value}");
        }
    }

    // Lists.

    #[test]
    fn lists_are_trimmed_and_normalised() {
        assert_eq!(assign("RR 1 , 3 ", 4), ids(&[1, 3, 1, 3, 1]));
        assert_eq!(assign("RR01,2", 4), ids(&[1, 2, 1, 2, 1]));
        assert_eq!(assign("RR2,0,1", 4), ids(&[2, 0, 1, 2, 0]));
        // Ids beyond the device count are the caller's business, as in Jina.
        assert_eq!(assign("RR7,9", 2), ids(&[7, 9, 7, 9, 7]));
    }

    #[test]
    fn single_and_mixed_names_are_kept_as_written() {
        assert_eq!(assign(&format!("RR{}", UUIDS[1]), 0), strs(&[UUIDS[1]; 5]));
        let value = format!("RR {} , 1 ", UUIDS[2]);
        assert_eq!(
            assign(&value, 2),
            strs(&[UUIDS[2], "1", UUIDS[2], "1", UUIDS[2]])
        );
        let mig = "MIG-GPU-0aaaaaaa-74d2-7297-d557-12771b6a79d5/1/0";
        assert_eq!(assign(&format!("RR{mig}"), 0), strs(&[mig; 5]));
    }

    #[test]
    fn replica_counts() {
        assert_eq!(assign_devices("RR", 0, 3), Ok(Some(vec![])));
        assert_eq!(assign_devices("RR", 1, 3), Ok(ids(&[0])));
        assert_eq!(assign_devices("RR1,3", 1, 0), Ok(ids(&[1])));
    }

    // Errors.

    #[test]
    fn bad_specs_are_errors() {
        let spec = |s: &str| s.to_string();
        let cases = [
            (
                "RRx:2",
                GpuError::SliceBound {
                    spec: spec("RRx:2"),
                    part: spec("x"),
                },
            ),
            (
                "RR0:y",
                GpuError::SliceBound {
                    spec: spec("RR0:y"),
                    part: spec("y"),
                },
            ),
            (
                "RR1.5:2",
                GpuError::SliceBound {
                    spec: spec("RR1.5:2"),
                    part: spec("1.5"),
                },
            ),
            (
                "RR1:2:0",
                GpuError::ZeroStep {
                    spec: spec("RR1:2:0"),
                },
            ),
            (
                "RR::0",
                GpuError::ZeroStep {
                    spec: spec("RR::0"),
                },
            ),
            (
                "RR1:2:3:4",
                GpuError::SliceShape {
                    spec: spec("RR1:2:3:4"),
                },
            ),
            (
                "RR1,,3",
                GpuError::EmptyItem {
                    spec: spec("RR1,,3"),
                },
            ),
            ("RR1,", GpuError::EmptyItem { spec: spec("RR1,") }),
            ("RR,", GpuError::EmptyItem { spec: spec("RR,") }),
            (
                "RR-1,2",
                GpuError::NegativeId {
                    spec: spec("RR-1,2"),
                    item: spec("-1"),
                },
            ),
            (
                "RR0:2,3",
                GpuError::BadItem {
                    spec: spec("RR0:2,3"),
                    item: spec("0:2"),
                },
            ),
            (
                "RR1.5",
                GpuError::BadItem {
                    spec: spec("RR1.5"),
                    item: spec("1.5"),
                },
            ),
            (
                "RR1,GPU 0",
                GpuError::BadItem {
                    spec: spec("RR1,GPU 0"),
                    item: spec("GPU 0"),
                },
            ),
            (
                "RR[0:2",
                GpuError::Brackets {
                    spec: spec("RR[0:2"),
                },
            ),
            (
                "RR0:2]",
                GpuError::Brackets {
                    spec: spec("RR0:2]"),
                },
            ),
            (
                "RR[[0:2]]",
                GpuError::Brackets {
                    spec: spec("RR[[0:2]]"),
                },
            ),
            (
                "RR[0]:[2]",
                GpuError::Brackets {
                    spec: spec("RR[0]:[2]"),
                },
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(check_spec(value), Err(expected.clone()), "{value}");
            assert_eq!(assign_devices(value, 5, 4), Err(expected), "{value}");
        }
    }

    #[test]
    fn error_messages_quote_the_spec() {
        let message = check_spec("RR1:2:0").err().map(|e| e.to_string());
        assert_eq!(
            message.as_deref(),
            Some("invalid CUDA_VISIBLE_DEVICES \"RR1:2:0\": slice step cannot be zero")
        );
        let message = assign_devices("RR5", 2, 3).err().map(|e| e.to_string());
        assert_eq!(
            message.as_deref(),
            Some("CUDA_VISIBLE_DEVICES \"RR5\" selects none of the 3 devices")
        );
    }

    // Device detection.

    #[test]
    fn counts_uuids_in_nvidia_smi_output() {
        let output = "GPU 0: Tesla T4 (UUID: GPU-0aaaaaaa-74d2-7297-d557-12771b6a79d5)\n\
                      GPU 1: Tesla T4 (UUID: GPU-0bbbbbbb-74d2-7297-d557-12771b6a79d5)\n\
                      GPU 2: NVIDIA A100-SXM4-40GB (UUID: GPU-0ccccccc-74d2-7297-d557-12771b6a79d5)\n";
        assert_eq!(count_uuids(output), 3);
        assert_eq!(count_uuids(""), 0);
        assert_eq!(count_uuids("No devices were found\n"), 0);
    }

    #[test]
    fn parses_cuda_total_devices() {
        assert_eq!(parse_total_devices(None), 0);
        assert_eq!(parse_total_devices(Some("4")), 4);
        assert_eq!(parse_total_devices(Some(" 2\n")), 2);
        assert_eq!(parse_total_devices(Some("")), 0);
        assert_eq!(parse_total_devices(Some("-1")), 0);
        assert_eq!(parse_total_devices(Some("two")), 0);
    }

    #[test]
    fn detect_device_count_does_not_panic() {
        // Whatever this machine has (usually no nvidia-smi), detection returns a count.
        let _ = detect_device_count();
    }
}
