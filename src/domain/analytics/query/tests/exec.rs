use super::*;

#[test]
fn smoke_print() {
    let conn = db();
    let c = ctx();
    for q in [
        "SELECT COUNT(*) as count FROM key_verifications_v1",
        "SELECT toStartOfDay(time) AS day, count() AS c, groupArray(outcome) AS o FROM key_verifications_v1 WHERE time >= now() - INTERVAL 7 DAY GROUP BY day ORDER BY day",
        "SELECT arrayJoin(tags) AS tag, count() AS c FROM key_verifications_v1 GROUP BY tag ORDER BY tag",
        "WITH x AS (SELECT key_id, outcome FROM key_verifications_v1 WHERE outcome = 'VALID') SELECT key_id, count() AS n FROM x GROUP BY key_id ORDER BY n DESC, key_id",
    ] {
        let compiled = ok(q, &c);
        println!("{q}\n  {}\n  {:?}\n  {:?}", compiled.sql, compiled.params, run_compiled(&conn, &compiled));
        let pg = ok(q, &ctx_for(Family::Verifications, Dialect::Postgres, "ws_a"));
        println!("  PG: {}\n", pg.sql);
    }
}
