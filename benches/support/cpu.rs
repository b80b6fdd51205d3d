//! CPU time of the benchmark's process as a criterion measurement. On a
//! machine shared with other work, it counts the work and leaves out the
//! time spent waiting for a free core (the wall-clock figures, what a user
//! waits, include it). Used by parse.rs and lint.rs.

use criterion::Throughput;
use criterion::measurement::{Measurement, ValueFormatter};

/// The CPU time of the process, in nanoseconds.
pub struct CpuTime;

fn process_cpu_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the duration of the
    // call, and CLOCK_PROCESS_CPUTIME_ID is supported on Linux. It counts
    // threads that have already ended too.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "the process's CPU clock cannot be read");
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        process_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        process_cpu_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &Millis
    }
}

/// Shows nanoseconds as milliseconds, and bytes per iteration as MiB/s.
struct Millis;

impl ValueFormatter for Millis {
    fn scale_values(&self, _typical: f64, values: &mut [f64]) -> &'static str {
        for v in values {
            *v /= 1e6;
        }
        "ms"
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (per_iteration, unit) = match throughput {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                (*n as f64 / 1_048_576.0, "MiB/s")
            }
            Throughput::Elements(n) | Throughput::Bits(n) => (*n as f64, "elem/s"),
            Throughput::ElementsAndBytes { elements, .. } => (*elements as f64, "elem/s"),
        };
        for v in values {
            *v = per_iteration / (*v / 1e9);
        }
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}
