//! Micro-benchmarks of the pure steps of `keys.verifyKey`, through keyward's public API.
//!
//! One criterion group per step: `hash`, `key_cache`, `permissions`, `ratelimit`, `credits`.
//! See README.md for what each benchmark measures.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion};

use keyward::domain::credits::{self, Balance, KeyCredits, Ledger, LocalLedger, Refill, Spend};
use keyward::domain::keys::cache::{Cached, CachedKey, Interner, KeyCache};
use keyward::domain::keys::hash::{digest_key, hash_key, hash_of_digest, Digest};
use keyward::domain::ratelimit::{namespace_key, LimitCheck, LocalCounters};
use keyward::domain::rbac::query;
use keyward::model::{CreditRecord, CreditRow, CreditWrite, KeyRow, StoredCredits};
use keyward::server::DEFAULT_KEY_CACHE_CAPACITY;
use keyward::store::{CreditStore, StoreResult};

/// A key in the format `bench/load_keys.py` writes: `bk_` and 32 hex characters.
const KEY: &str = "bk_4f3c2a1b0e9d8c7b6a5f4e3d2c1b0a99";

/// The 10-term query of scenario g of `bench/run.sh`.
const QUERY: &str = "perm.r0.p0 AND perm.r1.p1 AND (perm.r2.p2 OR nope.x) AND perm.r3.p3 AND \
                     (perm.r4.p4 OR nope.y) AND perm.r0.p9 AND perm.r4.p9 AND perm.r2.p5";

/// A fixed instant (2026-06-15T12:00:00Z), so runs do not depend on the clock.
const NOW: i64 = 1_781_524_800_000;

/// A small deterministic generator (splitmix64), so every run uses the same keys.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The `i`-th bench key's plaintext.
fn plaintext(i: u64) -> String {
    let mut rng = SplitMix(i);
    format!("bk_{:016x}{:016x}", rng.next(), rng.next())
}

/// A key row as the store returns it for a key without credits, limits or identity.
fn key_row(i: u64, permissions: Vec<String>) -> KeyRow {
    KeyRow {
        id: format!("key_{i:020}"),
        key_space_id: "ks_0123456789abcdef".to_string(),
        workspace_id: "ws_0123456789abcdef".to_string(),
        api_id: "api_0123456789abcdef".to_string(),
        hash: String::new(),
        start: "bk_4f3c".to_string(),
        name: None,
        meta: None,
        identity: None,
        expires: None,
        enabled: true,
        remaining: None,
        refill_day: None,
        refill_amount: None,
        last_refill_at: None,
        last_used_at: 0,
        pending_migration_id: None,
        created_at: NOW,
        updated_at: None,
        api_deleted: false,
        ip_whitelist: None,
        workspace_enabled: true,
        permissions,
        roles: Vec::new(),
        ratelimits: Vec::new(),
    }
}

/// A cache of the server's default capacity holding `n` found keys (`n` at most that capacity);
/// returns it with their digests in a shuffled order.
fn filled_cache(n: u64) -> (KeyCache, Vec<Digest>) {
    let cache = KeyCache::new(DEFAULT_KEY_CACHE_CAPACITY);
    let interner = Interner::default();
    let mut digests = Vec::with_capacity(n as usize);
    for i in 0..n {
        let digest = digest_key(&plaintext(i));
        let key = Arc::new(CachedKey::new(key_row(i, Vec::new()), &interner));
        cache.insert(digest, cache.generation(&digest), Cached::Found(key));
        digests.push(digest);
    }
    assert_eq!(cache.len() as u64, n, "the cache must hold every key");
    // Visit the keys in a random order, as scenario e does, not in insertion order.
    let mut rng = SplitMix(42);
    for i in (1..digests.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        digests.swap(i, j);
    }
    (cache, digests)
}

fn hash(c: &mut Criterion) {
    let mut g = c.benchmark_group("hash");
    // What verification computes first: the raw SHA-256 the key cache is keyed by.
    g.bench_function("digest_key", |b| b.iter(|| digest_key(black_box(KEY))));
    // On a cache miss: the stored form (base64 of the digest) the store is queried with.
    let digest = digest_key(KEY);
    g.bench_function("hash_of_digest", |b| {
        b.iter(|| hash_of_digest(black_box(&digest)))
    });
    // Both together: the stored form from the plaintext.
    g.bench_function("hash_key", |b| b.iter(|| hash_key(black_box(KEY))));
    g.finish();
}

fn key_cache(c: &mut Criterion) {
    let mut g = c.benchmark_group("key_cache");
    for (label, n) in [("1k", 1_000u64), ("1m", 1_000_000)] {
        let (cache, digests) = filled_cache(n);
        // Hits on one key, over and over (scenario b).
        let one = digests[0];
        g.bench_function(format!("hit_same_{label}"), |b| {
            b.iter(|| cache.get(black_box(&one)))
        });
        // Hits on keys drawn in a random order from every key the cache holds (scenario e).
        let mut i = 0;
        g.bench_function(format!("hit_random_{label}"), |b| {
            b.iter(|| {
                i = (i + 1) % digests.len();
                cache.get(black_box(&digests[i]))
            })
        });
        // A digest the cache does not hold (not even as "missing"): the path to the store.
        let absent = digest_key("bk_not_a_key_of_this_cache");
        g.bench_function(format!("miss_{label}"), |b| {
            b.iter(|| cache.get(black_box(&absent)))
        });
    }
    // What the server does per verification before any other step: hash, then look up.
    let (cache, _) = filled_cache(1_000);
    let key = plaintext(7);
    g.bench_function("digest_and_hit_1k", |b| {
        b.iter(|| cache.get(&digest_key(black_box(&key))))
    });
    g.finish();
}

fn permissions(c: &mut Criterion) {
    let mut g = c.benchmark_group("permissions");
    // The key of scenario g: 5 roles of 10 permissions each, `perm.r<i>.p<j>`.
    let held: Vec<String> = (0..5)
        .flat_map(|r| (0..10).map(move |p| format!("perm.r{r}.p{p}")))
        .collect();
    let key = CachedKey::new(key_row(0, held), &Interner::default());
    assert_eq!(key.permissions().len(), 50);
    let parsed = query::parse(QUERY).expect("the query parses");
    assert!(
        parsed.evaluate(&|p| key.holds(p)),
        "the key satisfies the query"
    );

    g.bench_function("parse_10_terms", |b| {
        b.iter(|| query::parse(black_box(QUERY)))
    });
    g.bench_function("evaluate_10_terms_50_held", |b| {
        b.iter(|| black_box(&parsed).evaluate(&|p| key.holds(p)))
    });
    // What verification does per request: parse, evaluate, drop the tree.
    g.bench_function("parse_and_evaluate", |b| {
        b.iter(|| {
            query::parse(black_box(QUERY))
                .map(|q| q.evaluate(&|p| key.holds(p)))
                .unwrap_or(false)
        })
    });
    g.bench_function("holds_one_of_50", |b| {
        b.iter(|| key.holds(black_box("perm.r3.p7")))
    });
    g.finish();
}

/// A `ratelimit.limit` check that never runs out within a benchmark.
fn check(identifier: &str) -> LimitCheck {
    LimitCheck {
        key: namespace_key("ws_0123456789abcdef", "rlns_0123456789", identifier, 60_000),
        limit: i64::MAX / 2,
        duration_ms: 60_000,
        cost: 1,
    }
}

fn ratelimit(c: &mut Criterion) {
    let mut g = c.benchmark_group("ratelimit");
    // Building the counter key, as every `ratelimit.limit` does before deciding.
    g.bench_function("counter_key", |b| {
        b.iter(|| {
            namespace_key(
                black_box("ws_0123456789abcdef"),
                black_box("rlns_0123456789"),
                black_box("user_12345"),
                60_000,
            )
        })
    });

    // One identifier, decided over and over (scenario h).
    let counters = LocalCounters::new();
    let hot = [check("hot")];
    g.bench_function("decide_one_identifier", |b| {
        b.iter(|| counters.decide_now(black_box(&hot), NOW))
    });

    // 100,000 identifiers in turn, every counter already there (scenario i).
    let counters = LocalCounters::new();
    let many: Vec<[LimitCheck; 1]> = (0..100_000)
        .map(|i| [check(&format!("user_{i}"))])
        .collect();
    for one in &many {
        counters.decide_now(one, NOW);
    }
    let mut i = 0;
    g.bench_function("decide_100k_identifiers", |b| {
        b.iter(|| {
            i = (i + 1) % many.len();
            counters.decide_now(black_box(&many[i]), NOW)
        })
    });

    // A verification with three limits (say a key's, its identity's and one named in the
    // request): the all-or-nothing batch path.
    let counters = LocalCounters::new();
    let batch = [check("key"), check("identity"), check("requested")];
    g.bench_function("decide_batch_of_3", |b| {
        b.iter(|| counters.decide_now(black_box(&batch), NOW))
    });
    g.finish();
}

/// A credit store whose every key holds a balance that never runs out; writes go nowhere.
/// `LocalLedger` reads it once per key, then spends in memory.
struct EndlessCredits;

#[async_trait]
impl CreditStore for EndlessCredits {
    async fn load_credits(&self, _key_id: &str) -> StoreResult<Option<CreditRow>> {
        Ok(Some(CreditRow {
            remaining: Some(i64::MAX / 2),
            last_refill_at: Some(NOW),
            created_at: NOW,
        }))
    }

    async fn write_balances(&self, _rows: &[(String, i64, i64)]) -> StoreResult<()> {
        Ok(())
    }

    async fn modify_credits(
        &self,
        _key_id: &str,
        _decide: &mut (dyn for<'s> FnMut(&'s StoredCredits) -> Option<CreditWrite> + Send),
        _record: Option<CreditRecord<'_>>,
    ) -> StoreResult<bool> {
        Ok(false)
    }
}

fn credits(c: &mut Criterion) {
    let mut g = c.benchmark_group("credits");
    let balance = Balance {
        remaining: i64::MAX / 2,
        refilled_at: NOW,
    };
    // The rule alone (refill if due, then spend), for a key without a refill...
    g.bench_function("spend_rule_no_refill", |b| {
        b.iter(|| credits::spend(black_box(balance), None, 1, black_box(NOW)))
    });
    // ... with a daily refill (not due: the boundary is computed and compared) ...
    let daily = Some(Refill {
        amount: 1000,
        day: None,
    });
    g.bench_function("spend_rule_daily_refill", |b| {
        b.iter(|| credits::spend(black_box(balance), daily, 1, black_box(NOW)))
    });
    // ... and with a monthly one (on the 31st: clamped to the month's last day).
    let monthly = Some(Refill {
        amount: 1000,
        day: Some(31),
    });
    g.bench_function("spend_rule_monthly_refill", |b| {
        b.iter(|| credits::spend(black_box(balance), monthly, 1, black_box(NOW)))
    });

    // The in-memory ledger of the SQLite server: `Ledger::spend` on a key whose balance is
    // already loaded (the key's slot, its lock, the rule, marking it dirty once). The ledger is
    // async, so each batch of iterations runs inside one `block_on` of a current-thread runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let ledger = LocalLedger::new(Arc::new(EndlessCredits));
    let key = KeyCredits {
        key_id: "key_00000000000000000001",
        refill: None,
        created_at: NOW,
    };
    let first = rt.block_on(ledger.spend(&key, 1, NOW));
    assert!(matches!(first, Ok(Spend::Spent(_))));
    g.bench_function("local_ledger_spend", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let _ = black_box(ledger.spend(black_box(&key), 1, NOW).await);
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn config() -> Criterion {
    // Shorter than criterion's defaults (3 s warm-up, 5 s measurement): the whole suite runs in
    // about two minutes. A change under 5% (criterion's default: 1%) is reported as noise, since
    // the machines this runs on are small and shared. Command-line options override all three
    // (`--measurement-time 10`, `--noise-threshold 0.02`).
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .noise_threshold(0.05)
}

criterion_group! {
    name = benches;
    config = config();
    targets = hash, key_cache, permissions, ratelimit, credits
}
criterion_main!(benches);
