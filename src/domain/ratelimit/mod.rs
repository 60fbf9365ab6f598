//! The rate-limit engine: sliding windows over fixed cells, decided atomically in batches.
//!
//! A window of `duration` ms is approximated Unkey's way: time is cut into fixed cells aligned to
//! the epoch (`seq = now / duration`); a request is allowed when
//!
//! ```text
//! current + trunc(previous × (1 − elapsed fraction of the current cell)) + cost ≤ limit
//! ```
//!
//! and then `cost` is added to the current cell. `reset` is the end of the current cell. A limit
//! of 0 denies everything. A batch ([`Counters::decide`]) is all-or-nothing: if any check fails,
//! nothing is counted, failing checks report `remaining: 0`, and passing ones report what they
//! would have had left.
//!
//! Counters sit behind [`Counters`] so that several nodes can share them (one atomic script per
//! decision in Redis); [`LocalCounters`] keeps them in this process, exact for any concurrency,
//! and forgets cells once they can no longer matter (two cells old).

pub mod named;
pub mod namespaces;
pub mod workspace;

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

/// One limit to check: `limit` requests per `duration_ms`, spending `cost`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitCheck {
    /// Identifies the counter: everything that makes two requests share a limit.
    pub key: String,
    pub limit: i64,
    pub duration_ms: i64,
    pub cost: i64,
}

/// The decision for one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitOutcome {
    pub passed: bool,
    pub remaining: i64,
    /// Unix ms at which the current cell ends.
    pub reset: i64,
}

/// A failure of a shared counter backend (the local one cannot fail).
#[derive(Debug, thiserror::Error)]
#[error("rate-limit counters unavailable: {0}")]
pub struct CounterError(pub String);

/// Where counters live.
#[async_trait]
pub trait Counters: Send + Sync + 'static {
    /// Decides every check at `now` together: all are counted, or none.
    async fn decide(
        &self,
        checks: &[LimitCheck],
        now: i64,
    ) -> Result<Vec<LimitOutcome>, CounterError>;
}

/// Two adjacent cells of one counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cells {
    seq: i64,
    current: i64,
    previous: i64,
}

impl Cells {
    /// The cells as seen from cell `seq` (older ones roll over or expire).
    fn at(self, seq: i64) -> Cells {
        match seq - self.seq {
            0 => self,
            1 => Cells {
                seq,
                current: 0,
                previous: self.current,
            },
            _ => Cells {
                seq,
                current: 0,
                previous: 0,
            },
        }
    }
}

/// What a check would use: the weighted count so far, and its cell.
fn weighted(cells: Cells, now: i64, duration: i64) -> i64 {
    let into_cell = now - cells.seq * duration;
    // trunc(previous × (1 − into/duration)), in integers.
    let previous = (i128::from(cells.previous) * i128::from(duration - into_cell)
        / i128::from(duration)) as i64;
    cells.current.saturating_add(previous)
}

const SHARDS: usize = 64;

/// Counters in this process's memory.
pub struct LocalCounters {
    shards: Vec<Mutex<HashMap<String, Cells>>>,
}

impl Default for LocalCounters {
    fn default() -> Self {
        LocalCounters {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

fn shard_of(key: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % SHARDS as u64) as usize
}

impl LocalCounters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides a batch synchronously (the async trait method wraps this).
    pub fn decide_now(&self, checks: &[LimitCheck], now: i64) -> Vec<LimitOutcome> {
        if let [check] = checks {
            return vec![self.decide_one(check, now)];
        }
        // Lock every shard the batch touches, in index order, so batches cannot deadlock.
        let mut indices: Vec<usize> = checks.iter().map(|c| shard_of(&c.key)).collect();
        indices.sort_unstable();
        indices.dedup();
        let mut guards: Vec<(usize, std::sync::MutexGuard<'_, HashMap<String, Cells>>)> = indices
            .iter()
            .map(|&i| (i, self.shards[i].lock().unwrap_or_else(|p| p.into_inner())))
            .collect();
        let mut staged: HashMap<&str, Cells> = HashMap::new();
        let mut outcomes = Vec::with_capacity(checks.len());
        let mut all_passed = true;
        for check in checks {
            let duration = check.duration_ms.max(1);
            let seq = now.div_euclid(duration);
            let shard = shard_of(&check.key);
            let stored = staged.get(check.key.as_str()).copied().or_else(|| {
                guards
                    .iter()
                    .find(|(i, _)| *i == shard)
                    .and_then(|(_, map)| map.get(&check.key).copied())
            });
            let cells = stored.unwrap_or_default().at(seq);
            let effective = weighted(cells, now, duration).saturating_add(check.cost);
            let passed = check.limit > 0 && effective <= check.limit;
            all_passed &= passed;
            outcomes.push(LimitOutcome {
                passed,
                remaining: if passed {
                    (check.limit - effective).max(0)
                } else {
                    0
                },
                reset: (seq + 1) * duration,
            });
            staged.insert(
                &check.key,
                Cells {
                    current: cells.current.saturating_add(check.cost),
                    ..cells
                },
            );
        }
        if all_passed {
            for (key, cells) in staged {
                let shard = shard_of(key);
                if let Some((_, map)) = guards.iter_mut().find(|(i, _)| *i == shard) {
                    match map.get_mut(key) {
                        Some(stored) => *stored = cells,
                        None => {
                            map.insert(key.to_string(), cells);
                        }
                    }
                }
            }
        } else {
            // Nothing is counted; passing checks report what they would have had left.
            for (outcome, check) in outcomes.iter_mut().zip(checks) {
                if outcome.passed {
                    outcome.remaining = (outcome.remaining + check.cost).min(check.limit.max(0));
                }
            }
        }
        outcomes
    }

    /// The common case, one check: one lock, no staging.
    fn decide_one(&self, check: &LimitCheck, now: i64) -> LimitOutcome {
        let duration = check.duration_ms.max(1);
        let seq = now.div_euclid(duration);
        let mut map = self.shards[shard_of(&check.key)]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let cells = map.get(&check.key).copied().unwrap_or_default().at(seq);
        let effective = weighted(cells, now, duration).saturating_add(check.cost);
        let passed = check.limit > 0 && effective <= check.limit;
        if passed {
            let counted = Cells {
                current: cells.current.saturating_add(check.cost),
                ..cells
            };
            match map.get_mut(&check.key) {
                Some(stored) => *stored = counted,
                None => {
                    map.insert(check.key.clone(), counted);
                }
            }
        }
        LimitOutcome {
            passed,
            remaining: if passed {
                (check.limit - effective).max(0)
            } else {
                0
            },
            reset: (seq + 1) * duration,
        }
    }

    /// Drops counters whose cells are too old to affect any decision. Returns how many remain.
    pub fn evict_expired(&self, now: i64, duration_of: impl Fn(&str) -> Option<i64>) -> usize {
        let mut remaining = 0;
        for shard in &self.shards {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|key, cells| match duration_of(key) {
                Some(duration) if duration > 0 => now.div_euclid(duration) - cells.seq < 2,
                _ => true,
            });
            remaining += map.len();
        }
        remaining
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Counters for LocalCounters {
    async fn decide(
        &self,
        checks: &[LimitCheck],
        now: i64,
    ) -> Result<Vec<LimitOutcome>, CounterError> {
        Ok(self.decide_now(checks, now))
    }
}

/// The counter key of a standalone limit: namespace id and identifier.
pub fn namespace_key(
    workspace_id: &str,
    namespace_id: &str,
    identifier: &str,
    duration_ms: i64,
) -> String {
    counter_key("ns", &[workspace_id, namespace_id, identifier], duration_ms)
}

/// The counter key of a key's or identity's named limit.
pub fn named_key(workspace_id: &str, name: &str, identifier: &str, duration_ms: i64) -> String {
    counter_key("kl", &[workspace_id, name, identifier], duration_ms)
}

/// `kind`, the parts and the window length, separated by U+001F (which no id or name contains).
/// Built by hand: this runs on every rate-limit decision, and `format!` costs several times more.
fn counter_key(kind: &str, parts: &[&str], duration_ms: i64) -> String {
    let mut digits = itoa::Buffer::new();
    let duration = digits.format(duration_ms);
    let len = kind.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>() + 1 + duration.len();
    let mut key = String::with_capacity(len);
    key.push_str(kind);
    for part in parts {
        key.push('\u{1f}');
        key.push_str(part);
    }
    key.push('\u{1f}');
    key.push_str(duration);
    key
}

/// The window length encoded at the end of a counter key, for eviction.
pub fn duration_of_key(key: &str) -> Option<i64> {
    key.rsplit('\u{1f}').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(key: &str, limit: i64, duration_ms: i64, cost: i64) -> LimitCheck {
        LimitCheck {
            key: key.into(),
            limit,
            duration_ms,
            cost,
        }
    }

    #[test]
    fn a_fixed_budget_counts_down_and_resets_at_the_cell_end() {
        let c = LocalCounters::new();
        let now = 10_000;
        let first = c.decide_now(&[check("a", 3, 1000, 1)], now);
        assert_eq!(
            first[0],
            LimitOutcome {
                passed: true,
                remaining: 2,
                reset: 11_000
            }
        );
        c.decide_now(&[check("a", 3, 1000, 1)], now);
        let third = c.decide_now(&[check("a", 3, 1000, 1)], now);
        assert_eq!(third[0].remaining, 0);
        assert!(third[0].passed);
        let fourth = c.decide_now(&[check("a", 3, 1000, 1)], now + 999);
        assert_eq!(
            fourth[0],
            LimitOutcome {
                passed: false,
                remaining: 0,
                reset: 11_000
            }
        );
    }

    #[test]
    fn the_previous_cell_weighs_in_proportion_to_what_is_left_of_it() {
        let c = LocalCounters::new();
        // 10 requests in cell [0, 1000).
        for _ in 0..10 {
            assert!(c.decide_now(&[check("b", 10, 1000, 1)], 500)[0].passed);
        }
        // At 1250, 75% of the previous cell still counts: 7 (trunc of 7.5) used.
        let out = c.decide_now(&[check("b", 10, 1000, 1)], 1250);
        assert_eq!(
            out[0],
            LimitOutcome {
                passed: true,
                remaining: 2,
                reset: 2000
            }
        );
        // Two cells later everything is forgotten.
        let out = c.decide_now(&[check("b", 10, 1000, 1)], 3100);
        assert_eq!(out[0].remaining, 9);
    }

    #[test]
    fn costs_and_peeks() {
        let c = LocalCounters::new();
        assert_eq!(
            c.decide_now(&[check("c", 100, 60_000, 5)], 0)[0].remaining,
            95
        );
        let peek = c.decide_now(&[check("c", 100, 60_000, 0)], 0)[0];
        assert_eq!((peek.passed, peek.remaining), (true, 95));
        assert!(!c.decide_now(&[check("c", 100, 60_000, 96)], 0)[0].passed);
        assert_eq!(
            c.decide_now(&[check("c", 100, 60_000, 0)], 0)[0].remaining,
            95
        );
    }

    #[test]
    fn a_limit_of_zero_denies_everything() {
        let c = LocalCounters::new();
        assert!(!c.decide_now(&[check("z", 0, 1000, 1)], 0)[0].passed);
        assert!(!c.decide_now(&[check("z", 0, 1000, 0)], 0)[0].passed);
    }

    #[test]
    fn a_failing_batch_counts_nothing() {
        let c = LocalCounters::new();
        let fast = || check("fast", 3, 60_000, 1);
        let slow = || check("slow", 10, 60_000, 1);
        for expected in [(2, 9), (1, 8), (0, 7)] {
            let out = c.decide_now(&[fast(), slow()], 0);
            assert_eq!((out[0].remaining, out[1].remaining), expected);
        }
        let out = c.decide_now(&[fast(), slow()], 0);
        assert_eq!((out[0].passed, out[0].remaining), (false, 0));
        assert_eq!((out[1].passed, out[1].remaining), (true, 7));
        // The slow counter was not charged by the failed batch.
        assert_eq!(
            c.decide_now(&[check("slow", 10, 60_000, 0)], 0)[0].remaining,
            7
        );
    }

    #[test]
    fn the_same_counter_twice_in_a_batch_sees_its_own_cost() {
        let c = LocalCounters::new();
        let out = c.decide_now(
            &[
                check("d", 2, 1000, 1),
                check("d", 2, 1000, 1),
                check("d", 2, 1000, 1),
            ],
            0,
        );
        assert!(!out[2].passed);
        assert_eq!(c.decide_now(&[check("d", 2, 1000, 0)], 0)[0].remaining, 2);
    }

    #[test]
    fn old_counters_are_evicted() {
        let c = LocalCounters::new();
        c.decide_now(&[check(&namespace_key("w", "n", "i", 1000), 5, 1000, 1)], 0);
        c.decide_now(
            &[check(&namespace_key("w", "n", "j", 60_000), 5, 60_000, 1)],
            0,
        );
        assert_eq!(c.evict_expired(1500, duration_of_key), 2);
        assert_eq!(c.evict_expired(2000, duration_of_key), 1);
    }

    #[test]
    fn concurrent_callers_get_exactly_the_limit() {
        let c = std::sync::Arc::new(LocalCounters::new());
        let passed = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                let passed = passed.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        if c.decide_now(&[check("hot", 250, 60_000, 1)], 0)[0].passed {
                            passed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(passed.load(std::sync::atomic::Ordering::SeqCst), 250);
    }
}
