//! Quantities with units: byte sizes, durations, CPU shares.
//!
//! Spellings are strict so that a typo can never silently become a different
//! limit: sizes are a plain integer of bytes or an integer with `KiB`, `MiB`,
//! `GiB`, `TiB` (binary) or `KB`, `MB`, `GB`, `TB` (decimal); durations always
//! carry a unit (`ms`, `s`, `m`, `h`); CPUs are a number of CPUs (`1`, `0.5`)
//! or millicores (`"500m"`). This module must never guess.

use std::time::Duration;

use super::raw::Scalar;

/// Parse a byte size.
pub fn parse_size(v: &Scalar) -> Result<u64, String> {
    let s = match v {
        Scalar::Int(i) => return u64::try_from(*i).map_err(|_| format!("size {i} is negative")),
        Scalar::Float(f) => {
            return Err(format!(
                "size {f} is not a whole number of bytes; write e.g. `256MiB`"
            ));
        }
        Scalar::Str(s) => s.trim(),
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let unit = unit.trim();
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "unknown size unit in `{s}`; use B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB)"
            ));
        }
    };
    if num.is_empty() {
        return Err(format!("`{s}` is not a size; write e.g. `256MiB`"));
    }
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("size `{s}` is too large"))
}

/// Parse a duration; a unit is required.
pub fn parse_duration(v: &Scalar) -> Result<Duration, String> {
    let s = match v {
        Scalar::Str(s) => s.trim(),
        other => {
            return Err(format!(
                "duration `{other}` has no unit; write e.g. `{other}s` (units: ms, s, m, h)"
            ));
        }
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; write e.g. `60s` (units: ms, s, m, h)"))?;
    let d = match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" | "min" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        "" => {
            return Err(format!(
                "duration `{s}` has no unit; write e.g. `{s}s` (units: ms, s, m, h)"
            ));
        }
        u => {
            return Err(format!(
                "unknown duration unit `{u}` in `{s}`; use ms, s, m or h"
            ));
        }
    };
    d.ok_or_else(|| format!("duration `{s}` is too large"))
}

/// Parse a CPU quota into thousandths of a CPU.
pub fn parse_cpu(v: &Scalar) -> Result<u32, String> {
    let millis: f64 = match v {
        Scalar::Int(i) => *i as f64 * 1000.0,
        Scalar::Float(f) => f * 1000.0,
        Scalar::Str(s) => {
            let s = s.trim();
            match s.strip_suffix('m') {
                Some(m) => m.parse::<u64>().map(|m| m as f64).map_err(|_| {
                    format!("`{s}` is not a CPU quota; write `1`, `0.5` or `\"500m\"`")
                })?,
                None => s.parse::<f64>().map(|c| c * 1000.0).map_err(|_| {
                    format!("`{s}` is not a CPU quota; write `1`, `0.5` or `\"500m\"`")
                })?,
            }
        }
    };
    if !millis.is_finite() || millis < 1.0 || millis.fract() != 0.0 {
        return Err(format!(
            "CPU quota `{v}` must be a positive whole number of millicores (at least 1m)"
        ));
    }
    if millis > 1_048_576_000.0 {
        return Err(format!("CPU quota `{v}` is too large"));
    }
    Ok(millis as u32)
}

/// Format a byte count the way a policy would write it.
pub fn fmt_size(n: u64) -> String {
    for (unit, m) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if n >= m && n.is_multiple_of(m) {
            return format!("{}{unit}", n / m);
        }
    }
    format!("{n}B")
}

/// Format a duration the way a policy would write it.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms > 0 && ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Format a CPU quota.
pub fn fmt_cpu(millis: u32) -> String {
    if millis.is_multiple_of(1000) {
        format!("{}", millis / 1000)
    } else {
        format!("{millis}m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Scalar {
        Scalar::Str(x.into())
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size(&s("256MiB")), Ok(256 << 20));
        assert_eq!(parse_size(&s("1GB")), Ok(1_000_000_000));
        assert_eq!(parse_size(&Scalar::Int(4096)), Ok(4096));
        assert!(parse_size(&s("256Mb")).is_err());
        assert!(parse_size(&s("MiB")).is_err());
        assert!(parse_size(&s("99999999999999TiB")).is_err());
        assert!(parse_size(&Scalar::Int(-1)).is_err());
        assert_eq!(fmt_size(256 << 20), "256MiB");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration(&s("60s")), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration(&s("5m")), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration(&s("250ms")), Ok(Duration::from_millis(250)));
        assert!(
            parse_duration(&Scalar::Int(60))
                .unwrap_err()
                .contains("60s")
        );
        assert!(parse_duration(&s("60")).is_err());
        assert!(parse_duration(&s("1d")).is_err());
        assert_eq!(fmt_duration(Duration::from_secs(60)), "60s");
        assert_eq!(fmt_duration(Duration::from_secs(7200)), "2h");
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpu(&Scalar::Int(1)), Ok(1000));
        assert_eq!(parse_cpu(&Scalar::Float(0.5)), Ok(500));
        assert_eq!(parse_cpu(&s("500m")), Ok(500));
        assert!(parse_cpu(&Scalar::Int(0)).is_err());
        assert!(parse_cpu(&Scalar::Float(0.0001)).is_err());
        assert!(parse_cpu(&s("lots")).is_err());
        assert_eq!(fmt_cpu(1500), "1500m");
    }
}
