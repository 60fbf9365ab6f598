//! An analytics query as the store runs it: SQL the domain compiled and sandboxed, its
//! parameters and limits, and the rows it produced.

use std::time::Duration;

/// A compiled, read-only query over the analytics tables.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsQuery {
    pub sql: String,
    pub params: Vec<AnalyticsValue>,
    /// Past this the query is cancelled.
    pub timeout: Duration,
    /// Past this many bytes of values (a lower bound of the encoded size) reading stops.
    pub max_bytes: usize,
}

/// A parameter or a value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum AnalyticsValue {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
}

impl AnalyticsValue {
    /// What the value adds to an encoded response at least.
    pub fn size(&self) -> usize {
        match self {
            AnalyticsValue::Text(text) => text.len() + 2,
            AnalyticsValue::Null | AnalyticsValue::Bool(_) => 4,
            AnalyticsValue::Int(_) | AnalyticsValue::Float(_) => 1,
        }
    }
}

/// The result of a query: its rows, each value in column order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnalyticsRows {
    pub rows: Vec<Vec<AnalyticsValue>>,
}
