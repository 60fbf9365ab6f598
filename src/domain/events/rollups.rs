//! The rollups' counts: verifications and rate-limit decisions gathered per minute group in
//! memory, and written as rounds of upserts into the minute, hour, day and month tables, a chunk
//! at a time (see [`Rollups::next_chunk`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Event, FastMap, SOURCE_API};
use crate::domain::keys::cache::CachedKey;
use crate::model::{EventBatch, Granularity, Namespace, RatelimitCount, VerificationCount};

/// How long the rollups' counts gather in memory before they are written, by default
/// (`--analytics-rollup-interval`): a key verified many times in that span costs one upsert per
/// bucket instead of one per batch. A crash loses at most this much of the rollups' counts (the
/// raw events are written in every round).
pub const ROLLUP_INTERVAL: Duration = Duration::from_secs(30);

/// Verification minute groups held at most before a round of rollups starts early, whatever
/// the interval (each becomes a row in each of the four rollup tables): many distinct keys in
/// little time. Groups that come this fast seldom repeat within a round, so a smaller round
/// writes about as many rows and holds less memory: with 1,000,000 keys verified at random, a
/// round and the groups gathering while it is written were tens of MiB at 100,000 (peak RSS
/// 414-435 MiB; 397-413 at 25,000, at lower request rates).
const MAX_PENDING_COUNTS: usize = 25_000;

/// Rate-limit minute groups held at most before a round starts early. Higher than for keys: the
/// identifiers of a busy namespace (users, IPs) come back within seconds, and every round writes
/// each group it holds four times, so a round cut short by this cap, before an identifier's
/// decisions could gather into one group, costs four upserts a decision (100,000 identifiers
/// in rotation: 20-25% less CPU a decision than at 25,000). A group costs about 200 bytes
/// between its map entry, its identifier and its round row: some 40 MiB at the cap.
const MAX_PENDING_LIMITS: usize = 200_000;

/// Rollup rows written per transaction. A round is written a chunk per writer tick, between the
/// raw events, so a round over hundreds of thousands of groups never holds the write lock (or the
/// event queue) for long.
pub(super) const ROLLUP_CHUNK: usize = 5_000;

/// A handle compared and hashed by identity (the `Arc`): cheap on the writer's busiest path, and
/// exact, since everything a rollup row keeps of a key or namespace is in the entry. Two entries
/// of one key (before and after a change) only make two groups that a round merges again.
struct Same<T>(Arc<T>);

impl<T> Clone for Same<T> {
    fn clone(&self) -> Self {
        Same(self.0.clone())
    }
}

impl<T> PartialEq for Same<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T> Eq for Same<T> {}

impl<T> std::hash::Hash for Same<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as usize).hash(state);
    }
}

/// Verifications gathered per minute, key, outcome and tags; the hour, day and month counts are
/// derived from these when a round starts.
#[derive(Clone, PartialEq, Eq, Hash)]
struct MinuteGroup {
    minute_ms: i64,
    key: Same<CachedKey>,
    outcome: &'static str,
    /// JSON text of the tags; `None` for none.
    tags: Option<Arc<str>>,
}

/// Rate-limit decisions gathered per minute, namespace and identifier.
#[derive(Clone, PartialEq, Eq, Hash)]
struct RatelimitMinute {
    minute_ms: i64,
    namespace: Same<Namespace>,
    identifier: Arc<str>,
}

/// A verification rollup row of a round: what it is keyed by, held through the key's entry.
struct CountRow {
    granularity: Granularity,
    time_ms: i64,
    key: Arc<CachedKey>,
    outcome: &'static str,
    tags: Option<Arc<str>>,
    count: i64,
    spent_credits: i64,
}

impl CountRow {
    fn keyed(&self) -> CountedAs<'_> {
        counted_as(
            self.granularity,
            self.time_ms,
            &self.key,
            self.outcome,
            self.tags.as_deref(),
        )
    }
}

/// A rate-limit rollup row of a round.
struct LimitRow {
    granularity: Granularity,
    time_ms: i64,
    namespace: Arc<Namespace>,
    identifier: Arc<str>,
    /// passed, total, passed tokens, total tokens.
    sums: [i64; 4],
}

impl LimitRow {
    fn keyed(&self) -> (Granularity, i64, &str, &str, &str) {
        (
            self.granularity,
            self.time_ms,
            &self.namespace.workspace_id,
            &self.namespace.id,
            &self.identifier,
        )
    }
}

/// The rollups' counts not yet written, and the round being written.
pub(super) struct Rollups {
    minutes: FastMap<MinuteGroup, (i64, i64)>,
    ratelimits: FastMap<RatelimitMinute, [i64; 4]>,
    since: Instant,
    interval: Duration,
    round: Round,
}

/// A round of rollup rows, sorted so that concurrent writers (several nodes on PostgreSQL) lock
/// rollup rows in one order, and written a chunk at a time: all the minute rows, then the hour
/// rows, and so on.
#[derive(Default)]
struct Round {
    counts: Staged<CountRow>,
    limits: Staged<LimitRow>,
}

/// A rollup row of a round: keyed by its bucket and what it counts, and merged with rows keyed
/// alike.
trait RollupRow {
    /// The row's granularity and the start of its bucket.
    fn bucket(&mut self) -> (&mut Granularity, &mut i64);
    /// The order of the keys (bucket first); `Equal` when keyed alike.
    fn order(&self, other: &Self) -> std::cmp::Ordering;
    /// Adds `later`'s sums to this row's.
    fn add(&mut self, later: &Self);

    /// Moves the row into the bucket of `granularity` holding its current one.
    fn coarsen(&mut self, granularity: Granularity) {
        let (current, time_ms) = self.bucket();
        *current = granularity;
        *time_ms = granularity.start(*time_ms);
    }

    /// Adds `later`'s sums when both are keyed alike; whether they were.
    fn absorb(&mut self, later: &Self) -> bool {
        let same = self.order(later).is_eq();
        if same {
            self.add(later);
        }
        same
    }
}

/// One kind of a round's rows, one granularity at a time. The round holds a row per group, not
/// four: once the rows of a granularity are written, the same rows move in place into the next
/// granularity's buckets, then are sorted and merged again (the minutes of one hour become one
/// row). Written, the rows of each granularity are in one order, the order a round of all four
/// at once had.
struct Staged<R> {
    rows: Vec<R>,
    granularity: Granularity,
    /// Rows of the current granularity written so far.
    done: usize,
}

impl<R> Default for Staged<R> {
    fn default() -> Self {
        Staged {
            rows: Vec::new(),
            granularity: Granularity::Month,
            done: 0,
        }
    }
}

impl<R: RollupRow> Staged<R> {
    /// A round's rows of the finest granularity, sorted and merged.
    fn new(rows: Vec<R>) -> Self {
        let mut staged = Staged {
            rows,
            granularity: Granularity::Minute,
            done: 0,
        };
        staged.sort_and_merge();
        staged
    }

    fn sort_and_merge(&mut self) {
        self.rows.sort_unstable_by(|a, b| a.order(b));
        self.rows.dedup_by(|later, kept| kept.absorb(later));
    }

    fn is_done(&self) -> bool {
        self.done == self.rows.len() && self.coarser().is_none()
    }

    fn coarser(&self) -> Option<Granularity> {
        match self.granularity {
            _ if self.rows.is_empty() => None,
            Granularity::Minute => Some(Granularity::Hour),
            Granularity::Hour => Some(Granularity::Day),
            Granularity::Day => Some(Granularity::Month),
            Granularity::Month => None,
        }
    }

    /// The next rows to write, at most `max`, all of one granularity; they count as written.
    fn take(&mut self, max: usize) -> &[R] {
        if self.done == self.rows.len() && max > 0 {
            if let Some(granularity) = self.coarser() {
                for row in &mut self.rows {
                    row.coarsen(granularity);
                }
                self.granularity = granularity;
                self.done = 0;
                self.sort_and_merge();
            }
        }
        let start = self.done;
        self.done = (start + max).min(self.rows.len());
        &self.rows[start..self.done]
    }
}

impl RollupRow for CountRow {
    fn bucket(&mut self) -> (&mut Granularity, &mut i64) {
        (&mut self.granularity, &mut self.time_ms)
    }

    fn order(&self, other: &Self) -> std::cmp::Ordering {
        self.keyed().cmp(&other.keyed())
    }

    fn add(&mut self, later: &Self) {
        self.count = self.count.saturating_add(later.count);
        self.spent_credits = self.spent_credits.saturating_add(later.spent_credits);
    }
}

impl RollupRow for LimitRow {
    fn bucket(&mut self) -> (&mut Granularity, &mut i64) {
        (&mut self.granularity, &mut self.time_ms)
    }

    fn order(&self, other: &Self) -> std::cmp::Ordering {
        self.keyed().cmp(&other.keyed())
    }

    fn add(&mut self, later: &Self) {
        for (sum, add) in self.sums.iter_mut().zip(later.sums) {
            *sum = sum.saturating_add(add);
        }
    }
}

impl Round {
    fn is_done(&self) -> bool {
        self.counts.is_done() && self.limits.is_done()
    }

    /// The next chunk, at most [`ROLLUP_CHUNK`] rows, as a batch to write; the rows count as
    /// written (a failed write loses them, as a failed write of raw events does).
    fn next_chunk(&mut self) -> EventBatch<'_> {
        let counts = self.counts.take(ROLLUP_CHUNK);
        let limits = self.limits.take(ROLLUP_CHUNK - counts.len());
        EventBatch {
            verification_counts: counts
                .iter()
                .map(|row| {
                    let k = row.keyed();
                    VerificationCount {
                        granularity: k.granularity,
                        time_ms: k.time_ms,
                        workspace_id: k.workspace_id,
                        key_space_id: k.key_space_id,
                        key_id: k.key_id,
                        identity_id: k.identity_id,
                        external_id: k.external_id,
                        outcome: k.outcome,
                        source: SOURCE_API,
                        tags: k.tags,
                        count: row.count,
                        spent_credits: row.spent_credits,
                    }
                })
                .collect(),
            ratelimit_counts: limits
                .iter()
                .map(|row| {
                    let (granularity, time_ms, workspace_id, namespace_id, identifier) =
                        row.keyed();
                    let [passed, total, passed_tokens, total_tokens] = row.sums;
                    RatelimitCount {
                        granularity,
                        time_ms,
                        workspace_id,
                        namespace_id,
                        identifier,
                        passed,
                        total,
                        passed_tokens,
                        total_tokens,
                    }
                })
                .collect(),
            ..Default::default()
        }
    }
}

impl Rollups {
    pub(super) fn new(interval: Duration) -> Self {
        Rollups {
            minutes: FastMap::default(),
            ratelimits: FastMap::default(),
            since: Instant::now(),
            interval,
            round: Round::default(),
        }
    }

    /// Counts a round's events once they are written: one map entry per event, with no copy of
    /// any id. The events are taken out of `events` (left empty, so that its memory serves the
    /// queue again): each one's key (or namespace) handle and identifier move
    /// into its group (or are dropped, as the event would have been), so counting adds no
    /// reference-count traffic on a hot key's entry, which every request thread also touches.
    pub(super) fn note(&mut self, events: &mut Vec<Event>, tags: Vec<Option<String>>) {
        for (event, tags) in events.drain(..).zip(tags) {
            match event {
                Event::Verification(e) => {
                    let sums = self
                        .minutes
                        .entry(MinuteGroup {
                            minute_ms: Granularity::Minute.start(e.time_ms),
                            key: Same(e.key),
                            outcome: e.outcome,
                            tags: tags.map(Arc::from),
                        })
                        .or_default();
                    // Saturating: a client chooses the costs, and a sum must not overflow.
                    sums.0 = sums.0.saturating_add(1);
                    sums.1 = sums.1.saturating_add(e.spent_credits);
                }
                Event::Ratelimit(e) => {
                    let sums = self
                        .ratelimits
                        .entry(RatelimitMinute {
                            minute_ms: Granularity::Minute.start(e.time_ms),
                            namespace: Same(e.namespace),
                            identifier: Arc::from(e.identifier),
                        })
                        .or_default();
                    // Saturating: `tokens` is the client's `cost`, up to i64::MAX each.
                    let passed_tokens = if e.passed { e.tokens } else { 0 };
                    for (sum, add) in
                        sums.iter_mut()
                            .zip([i64::from(e.passed), 1, passed_tokens, e.tokens])
                    {
                        *sum = sum.saturating_add(add);
                    }
                }
            }
        }
    }

    /// Whether a new round should start: when asked to (`now`), after the interval, or when many
    /// counts are pending.
    fn due(&self, now: bool) -> bool {
        let pending = self.minutes.len() + self.ratelimits.len();
        pending > 0
            && (now
                || self.since.elapsed() >= self.interval
                || self.minutes.len() >= MAX_PENDING_COUNTS
                || self.ratelimits.len() >= MAX_PENDING_LIMITS)
    }

    /// The next chunk to write: of the round in progress, else of a new round when one is due
    /// (see [`Rollups::due`]). `None` when there is nothing to write now.
    pub(super) fn next_chunk(&mut self, now: bool) -> Option<EventBatch<'_>> {
        if self.round.is_done() {
            if !self.due(now) {
                return None;
            }
            self.start_round();
        }
        Some(self.round.next_chunk())
    }

    /// Takes the pending counts into a new round: a row per minute group, sorted, and merged
    /// where keyed alike (two entries of one key or namespace); the coarser granularities'
    /// rows come from the same rows as the round goes on (see [`Staged`]).
    fn start_round(&mut self) {
        let minutes = std::mem::take(&mut self.minutes);
        let ratelimits = std::mem::take(&mut self.ratelimits);
        self.since = Instant::now();
        let counts = minutes
            .into_iter()
            .map(|(g, (count, spent_credits))| CountRow {
                granularity: Granularity::Minute,
                time_ms: g.minute_ms,
                key: g.key.0,
                outcome: g.outcome,
                tags: g.tags,
                count,
                spent_credits,
            })
            .collect();
        let limits = ratelimits
            .into_iter()
            .map(|(g, sums)| LimitRow {
                granularity: Granularity::Minute,
                time_ms: g.minute_ms,
                namespace: g.namespace.0,
                identifier: g.identifier,
                sums,
            })
            .collect();
        self.round = Round {
            counts: Staged::new(counts),
            limits: Staged::new(limits),
        };
    }
}

/// What a verification rollup row is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct CountedAs<'a> {
    granularity: Granularity,
    time_ms: i64,
    workspace_id: &'a str,
    key_space_id: &'a str,
    key_id: &'a str,
    identity_id: &'a str,
    external_id: &'a str,
    outcome: &'a str,
    tags: &'a str,
}

fn counted_as<'a>(
    granularity: Granularity,
    time_ms: i64,
    key: &'a CachedKey,
    outcome: &'a str,
    tags: Option<&'a str>,
) -> CountedAs<'a> {
    let identity = key.identity();
    CountedAs {
        granularity,
        time_ms,
        workspace_id: key.workspace_id(),
        key_space_id: key.key_space_id(),
        key_id: &key.id,
        identity_id: identity.map_or("", |i| &*i.id),
        external_id: identity.map_or("", |i| &*i.external_id),
        outcome,
        tags: tags.unwrap_or("[]"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{tags_json, PendingEvent, PendingRatelimit};
    use super::*;

    fn key(id: &str) -> Arc<CachedKey> {
        Arc::new(CachedKey::plain(id, "ws", "api", "ks"))
    }

    fn verified(key: &Arc<CachedKey>, time_ms: i64, spent_credits: i64) -> Event {
        Event::Verification(PendingEvent {
            key: key.clone(),
            request_id: "req".into(),
            time_ms,
            outcome: "VALID",
            tags: Vec::new(),
            spent_credits,
            latency_us: 1,
        })
    }

    fn namespace(id: &str) -> Arc<Namespace> {
        Arc::new(Namespace {
            id: id.into(),
            workspace_id: "ws".into(),
            name: id.into(),
            deleted: false,
            created_at: 0,
            overrides: Vec::new(),
        })
    }

    fn decided(namespace: &Arc<Namespace>, identifier: &str, time_ms: i64, passed: bool) -> Event {
        Event::Ratelimit(PendingRatelimit {
            namespace: namespace.clone(),
            request_id: "req".into(),
            time_ms,
            identifier: identifier.into(),
            passed,
            latency_us: 1,
            override_id: None,
            limit: 10,
            remaining: 9,
            reset_at_ms: time_ms + 1000,
            tokens: 2,
        })
    }

    fn note(rollups: &mut Rollups, mut events: Vec<Event>) {
        let tags = tags_json(&events);
        rollups.note(&mut events, tags);
    }

    #[test]
    fn rollup_counts_gather_across_rounds_until_they_are_due() {
        let mut rollups = Rollups::new(Duration::from_secs(3600));
        assert!(!rollups.due(true), "nothing pending");
        assert!(rollups.next_chunk(true).is_none());
        let (a, b) = (key("a"), key("b"));
        // A second cache entry of key a (after a change): the round merges it with the first.
        let a_again = key("a");
        let ns = namespace("ns");
        note(
            &mut rollups,
            vec![
                verified(&b, 60_000, 1),
                verified(&a, 60_001, 1),
                verified(&b, 61_000, 1),
                decided(&ns, "x", 1_000, true),
            ],
        );
        // Another entry of the namespace, as after an override changed: merged too.
        note(
            &mut rollups,
            vec![
                verified(&a_again, 90_000, 2),
                verified(&a, 3_700_000, 0),
                decided(&namespace("ns"), "x", 2_000, false),
            ],
        );
        assert!(!rollups.due(false), "the interval has not passed");
        assert!(rollups.next_chunk(false).is_none());
        assert!(rollups.due(true));
        // The round, a granularity at a time: (granularity, key or identifier, time, sums).
        let mut counts = Vec::new();
        let mut limits = Vec::new();
        while let Some(batch) = rollups.next_chunk(true) {
            assert!(batch.verifications.is_empty() && !batch.is_empty());
            counts.extend(batch.verification_counts.iter().map(|c| {
                (
                    c.granularity,
                    c.key_id.to_string(),
                    c.time_ms,
                    c.count,
                    c.spent_credits,
                )
            }));
            limits.extend(batch.ratelimit_counts.iter().map(|c| {
                (
                    c.granularity,
                    c.identifier.to_string(),
                    [c.passed, c.total, c.passed_tokens, c.total_tokens],
                )
            }));
        }
        let seen = |granularity: Granularity| -> Vec<(&str, i64, i64, i64)> {
            counts
                .iter()
                .filter(|c| c.0 == granularity)
                .map(|c| (c.1.as_str(), c.2, c.3, c.4))
                .collect()
        };
        // One row per group, in group order (bucket, then key).
        assert_eq!(
            seen(Granularity::Minute),
            [
                ("a", 60_000, 2, 3),
                ("b", 60_000, 2, 2),
                ("a", 3_660_000, 1, 0)
            ]
        );
        assert_eq!(
            seen(Granularity::Hour),
            [("a", 0, 2, 3), ("b", 0, 2, 2), ("a", 3_600_000, 1, 0)]
        );
        assert_eq!(seen(Granularity::Day), [("a", 0, 3, 3), ("b", 0, 2, 2)]);
        assert_eq!(seen(Granularity::Month), [("a", 0, 3, 3), ("b", 0, 2, 2)]);
        assert_eq!(counts.len(), 10, "no other rows");
        // One decision's row per granularity, both decisions in it: passed, total, tokens.
        assert_eq!(
            limits,
            Granularity::ALL
                .map(|g| (g, "x".to_string(), [1, 2, 2, 4]))
                .to_vec()
        );
        assert!(!rollups.due(true), "the round took every count");
        assert!(rollups.next_chunk(true).is_none());
    }

    #[test]
    fn many_pending_groups_start_a_round_early_at_each_kinds_own_cap() {
        let mut rollups = Rollups::new(Duration::from_secs(3600));
        let ns = namespace("ns");
        // As many identifiers as keys make an early round: not yet, identifiers gather longer.
        note(
            &mut rollups,
            (0..MAX_PENDING_COUNTS)
                .map(|i| decided(&ns, &format!("id{i}"), 0, true))
                .collect(),
        );
        assert!(
            !rollups.due(false),
            "identifiers gather up to their own cap"
        );
        note(
            &mut rollups,
            (MAX_PENDING_COUNTS..MAX_PENDING_LIMITS)
                .map(|i| decided(&ns, &format!("id{i}"), 0, true))
                .collect(),
        );
        assert!(rollups.due(false), "at the identifiers' cap");

        let mut rollups = Rollups::new(Duration::from_secs(3600));
        let keys: Vec<_> = (0..MAX_PENDING_COUNTS)
            .map(|i| key(&format!("k{i}")))
            .collect();
        note(
            &mut rollups,
            keys[1..].iter().map(|k| verified(k, 0, 0)).collect(),
        );
        assert!(!rollups.due(false));
        note(&mut rollups, vec![verified(&keys[0], 0, 0)]);
        assert!(rollups.due(false), "at the keys' cap");
    }

    #[test]
    fn a_large_round_is_written_a_chunk_at_a_time_in_order() {
        let mut rollups = Rollups::new(Duration::from_secs(3600));
        let ns = namespace("ns");
        let groups = ROLLUP_CHUNK; // identifiers, each a row in four tables
        note(
            &mut rollups,
            (0..groups)
                .map(|i| decided(&ns, &format!("id{i:06}"), 0, true))
                .collect(),
        );
        let mut written = Vec::new();
        // Not asked for and not due: nothing; then a round, a chunk per call.
        assert!(rollups.next_chunk(false).is_none());
        let first = rollups.next_chunk(true).expect("a round");
        assert_eq!(first.ratelimit_counts.len(), ROLLUP_CHUNK);
        written.extend(
            first
                .ratelimit_counts
                .iter()
                .map(|c| (c.granularity, c.identifier.to_string())),
        );
        drop(first);
        // Counts that arrive meanwhile wait for the next round.
        note(&mut rollups, vec![decided(&ns, "later", 0, true)]);
        while let Some(chunk) = rollups.next_chunk(false) {
            assert!(chunk.ratelimit_counts.len() <= ROLLUP_CHUNK);
            assert!(
                chunk
                    .ratelimit_counts
                    .iter()
                    .all(|c| c.identifier != "later"),
                "a round holds what was pending when it started"
            );
            written.extend(
                chunk
                    .ratelimit_counts
                    .iter()
                    .map(|c| (c.granularity, c.identifier.to_string())),
            );
        }
        assert_eq!(written.len(), 4 * groups);
        assert!(
            written.windows(2).all(|w| w[0] < w[1]),
            "sorted, so locks are taken in one order"
        );
        let mut next = Vec::new();
        while let Some(chunk) = rollups.next_chunk(true) {
            assert_eq!(chunk.ratelimit_counts.len(), 1, "one granularity a chunk");
            next.extend(
                chunk
                    .ratelimit_counts
                    .iter()
                    .map(|c| (c.granularity, c.identifier.to_string())),
            );
        }
        assert_eq!(
            next,
            Granularity::ALL.map(|g| (g, "later".to_string())).to_vec(),
            "the next round"
        );
    }
}
