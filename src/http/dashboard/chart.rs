//! Charts drawn on the server as SVG: stacked bars of counts per time bucket. No chart library
//! and no script; colours come from the stylesheet, so both themes apply.

use maud::{html, Markup};
use serde_json::Value;

/// One series: its JSON field in each point, its CSS class suffix and its label.
pub struct Series {
    pub field: &'static str,
    pub class: &'static str,
    pub label: &'static str,
}

/// The outcomes of verifications, as `analytics.getUsage` reports them.
pub const VERIFICATIONS: &[Series] = &[
    Series {
        field: "valid",
        class: "valid",
        label: "Valid",
    },
    Series {
        field: "rateLimited",
        class: "rate_limited",
        label: "Rate limited",
    },
    Series {
        field: "usageExceeded",
        class: "usage_exceeded",
        label: "Usage exceeded",
    },
    Series {
        field: "disabled",
        class: "disabled",
        label: "Disabled",
    },
    Series {
        field: "expired",
        class: "expired",
        label: "Expired",
    },
    Series {
        field: "forbidden",
        class: "forbidden",
        label: "Forbidden",
    },
    Series {
        field: "insufficientPermissions",
        class: "insufficient_permissions",
        label: "Insufficient permissions",
    },
];

/// Standalone rate-limit decisions, as the namespace page counts them.
pub const RATELIMITS: &[Series] = &[
    Series {
        field: "passed",
        class: "passed",
        label: "Passed",
    },
    Series {
        field: "blocked",
        class: "blocked",
        label: "Blocked",
    },
];

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 20.0;

/// A stacked bar chart of `points` (objects with a `time` in unix ms and one count per series).
pub fn stacked_bars(points: &[Value], series: &[Series], caption: &str) -> Markup {
    let total = |p: &Value| -> f64 {
        series
            .iter()
            .map(|s| p[s.field].as_f64().unwrap_or(0.0))
            .sum()
    };
    let max = points.iter().map(total).fold(0.0_f64, f64::max).max(1.0);
    let plot_w = WIDTH - LEFT;
    let plot_h = HEIGHT - BOTTOM;
    let slot = plot_w / points.len().max(1) as f64;
    let bar = (slot * 0.8).max(1.0);
    let sum: f64 = points.iter().map(total).sum();
    let first = points.first().and_then(|p| p["time"].as_i64());
    let last = points.last().and_then(|p| p["time"].as_i64());
    let label = |ms: Option<i64>| {
        ms.map(|ms| {
            let text = crate::http::extract::rfc3339(ms);
            text.get(..16).unwrap_or(&text).replace('T', " ")
        })
        .unwrap_or_default()
    };
    html! {
        figure.chart-box {
            svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img"
                aria-label=(format!("{caption}: {} in all", sum as i64)) {
                line.axis x1=(LEFT) y1=(plot_h) x2=(WIDTH) y2=(plot_h) {}
                text x="0" y="12" { (max as i64) }
                text x="0" y=(plot_h) { "0" }
                @for (i, point) in points.iter().enumerate() {
                    @let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
                    @let mut y = plot_h;
                    g {
                        title {
                            (label(point["time"].as_i64())) " UTC: "
                            (total(point) as i64)
                        }
                        @for s in series {
                            @let n = point[s.field].as_f64().unwrap_or(0.0);
                            @if n > 0.0 {
                                @let h = n / max * (plot_h - 4.0);
                                @let top = { y -= h; y };
                                rect class=(format!("s-{}", s.class)) x=(format!("{x:.1}"))
                                    y=(format!("{top:.1}")) width=(format!("{bar:.1}"))
                                    height=(format!("{h:.1}")) {}
                            }
                        }
                    }
                }
                text x=(LEFT) y=(HEIGHT - 4.0) { (label(first)) }
                text x=(WIDTH) y=(HEIGHT - 4.0) text-anchor="end" { (label(last)) }
            }
            figcaption {
                ul.legend {
                    @for s in series {
                        @let n: f64 = points.iter().map(|p| p[s.field].as_f64().unwrap_or(0.0)).sum();
                        li { i class=(format!("s-{}", s.class)) {} (s.label) ": " (n as i64) }
                    }
                }
            }
        }
    }
}
