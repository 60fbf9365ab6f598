//! A key's credit balance and the changes management routes make to it, as stored.

use crate::model::patch::Patch;

/// Changes to a key's credit settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreditsPatch {
    pub remaining: Patch<i64>,
    /// `(amount, refill day or None for daily)`.
    pub refill: Patch<(i64, Option<i64>)>,
}

/// A key's balance as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditRow {
    pub remaining: Option<i64>,
    pub last_refill_at: Option<i64>,
    pub created_at: i64,
}

/// The result of an atomic spend in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendRow {
    Spent(i64),
    Insufficient(i64),
    Unlimited,
}

/// How `keys.updateCredits` changes a balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditOp {
    /// `None`: unlimited (and no refill).
    Set(Option<i64>),
    Increment(i64),
    /// Floors at zero.
    Decrement(i64),
}

/// Credit settings after `keys.updateCredits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditState {
    pub remaining: Option<i64>,
    pub refill_amount: Option<i64>,
    pub refill_day: Option<i64>,
}

/// The outcome of `update_credits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditUpdate {
    Done(CreditState),
    /// Increment or decrement of an unlimited key.
    Unlimited,
    NotFound,
}
