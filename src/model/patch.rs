//! How partial updates are spelled: a field kept, cleared or set; a set added to, taken from or
//! replaced.

/// A field of a partial update: leave it, clear it, or set it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

/// How a set changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetChange<T> {
    Add(Vec<T>),
    Remove(Vec<T>),
    Set(Vec<T>),
}
