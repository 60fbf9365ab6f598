//! A key's credit balance and the changes management routes make to it, as stored.

use crate::model::audit::AuditEvent;
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

/// A key's balance with its refill settings, as stored, read under lock by
/// `CreditStore::modify_credits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredCredits {
    /// `None`: unlimited.
    pub remaining: Option<i64>,
    pub refill_amount: Option<i64>,
    /// `None` with an amount: daily.
    pub refill_day: Option<i64>,
    /// `None` until the first refill (or credit change).
    pub last_refill_at: Option<i64>,
    pub created_at: i64,
}

/// What `CreditStore::modify_credits` writes back. The refill settings are written only with a
/// `CreditRecord` (a management change); a spend writes only the balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditWrite {
    pub remaining: Option<i64>,
    pub refill_amount: Option<i64>,
    pub refill_day: Option<i64>,
    pub last_refill_at: Option<i64>,
}

/// Makes a credit change a recorded management change: it sets the key's `updated_at` to `now`,
/// and appends the key's change-feed entry and these audit events in the same transaction.
#[derive(Debug, Clone, Copy)]
pub struct CreditRecord<'a> {
    pub now: i64,
    pub audit: &'a [AuditEvent],
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
