//! Permission queries: the text a caller sends in `keys.verifyKey`'s `permissions` field, parsed
//! into the same [`Requirement`] tree that root-key checks use, so one evaluator serves both.
//!
//! The language is Unkey's: permissions joined by `AND` / `OR` (case-insensitive, whole words, AND
//! binding tighter, both left-associative) and grouped by parentheses. A permission is a run of
//! `[A-Za-z0-9._\-*:/]`; `*` is an ordinary character. Error messages and their byte positions follow
//! Unkey's public messages, except that an invalid character gets the message Unkey intended rather
//! than its leaked internal one.
//!
//! The tree is kept flat: an `And` never holds an `And` and an `Or` never holds an `Or` (redundant
//! parentheses disappear), and a group always has at least two members. Only alternating AND/OR
//! nesting therefore adds depth, and [`MAX_NESTING`] bounds it, so evaluating or dropping any parsed
//! tree stays far from the stack's limit. The parser itself is a loop with an explicit stack.

use std::fmt;

use crate::domain::rbac::requirement::Requirement;

/// How many parentheses may be open at once. A query within the 1000-character schema limit can
/// never reach it, so for such queries every error is the one Unkey would report; it only guards
/// callers that pass longer text.
pub const MAX_NESTING: usize = 1000;

/// Why a query could not be parsed, with the byte offset the message refers to (the input's length
/// for a problem at its end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub message: String,
    pub position: usize,
}

impl QueryError {
    fn new(message: String, position: usize) -> Self {
        QueryError { message, position }
    }

    fn empty_input(position: usize) -> Self {
        Self::new(
            "Unexpected end of input. Please provide a valid permission query.".to_string(),
            position,
        )
    }

    fn end_of_query(position: usize) -> Self {
        Self::new(
            "Unexpected end of query. Expected a permission identifier or opening parenthesis."
                .to_string(),
            position,
        )
    }

    fn empty_parentheses(position: usize) -> Self {
        Self::new(
            format!(
                "Empty parentheses found at position {position}. Parentheses must contain at \
                 least one permission or expression."
            ),
            position,
        )
    }

    fn missing_close(position: usize) -> Self {
        Self::new(
            format!(
                "Missing closing parenthesis ')' at position {position}. Every opening \
                 parenthesis must have a matching closing parenthesis."
            ),
            position,
        )
    }

    fn expected_operand(token: &Token<'_>) -> Self {
        Self::new(
            format!(
                "Unexpected token '{}' at position {}. Expected a permission identifier or \
                 opening parenthesis.",
                token.text, token.position
            ),
            token.position,
        )
    }

    fn trailing(token: &Token<'_>) -> Self {
        Self::new(
            format!(
                "Unexpected token '{}' at position {}. The query appears to have extra content \
                 after a valid expression.",
                token.text, token.position
            ),
            token.position,
        )
    }

    fn invalid_character(c: char, position: usize) -> Self {
        Self::new(
            format!(
                "Invalid character '{c}' found in query at position {position}. Only letters, \
                 numbers, dots, underscores, hyphens, slashes, colons, asterisks, and parentheses \
                 are allowed."
            ),
            position,
        )
    }

    fn too_deep(position: usize) -> Self {
        Self::new(
            format!(
                "Query is nested too deeply at position {position}. Parentheses can be nested at \
                 most {MAX_NESTING} levels deep."
            ),
            position,
        )
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for QueryError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Permission,
    And,
    Or,
    Open,
    Close,
    End,
    /// A character outside the language. The lexer produces nothing after it.
    Invalid(char),
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    /// The token as written (operators keep their original case).
    text: &'a str,
    position: usize,
}

fn is_permission_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'*' | b':' | b'/')
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Hands out tokens on demand, so a bad character only matters once the parser reaches it: the
/// first problem in reading order is the one reported, as in Unkey.
struct Lexer<'a> {
    input: &'a str,
    /// Always on a char boundary: it only moves over ASCII bytes or a whole char.
    position: usize,
}

impl<'a> Lexer<'a> {
    fn new(input: &'a str) -> Self {
        Lexer { input, position: 0 }
    }

    fn next_token(&mut self) -> Token<'a> {
        let bytes = self.input.as_bytes();
        while bytes.get(self.position).copied().is_some_and(is_space) {
            self.position += 1;
        }
        let start = self.position;
        let Some(c) = self.input[start..].chars().next() else {
            return Token {
                kind: Kind::End,
                text: "",
                position: start,
            };
        };
        let kind = match c {
            '(' => {
                self.position += 1;
                Kind::Open
            }
            ')' => {
                self.position += 1;
                Kind::Close
            }
            c if c.is_ascii() && is_permission_byte(c as u8) => {
                while bytes
                    .get(self.position)
                    .copied()
                    .is_some_and(is_permission_byte)
                {
                    self.position += 1;
                }
                let word = &self.input[start..self.position];
                if word.eq_ignore_ascii_case("and") {
                    Kind::And
                } else if word.eq_ignore_ascii_case("or") {
                    Kind::Or
                } else {
                    Kind::Permission
                }
            }
            other => {
                self.position += other.len_utf8();
                Kind::Invalid(other)
            }
        };
        Token {
            kind,
            text: &self.input[start..self.position],
            position: start,
        }
    }
}

/// One level of parentheses (or the whole query) while it is being read: the finished OR
/// alternatives, and the AND terms of the alternative in progress.
#[derive(Default)]
struct Group {
    alternatives: Vec<Requirement>,
    terms: Vec<Requirement>,
}

impl Group {
    fn push_term(&mut self, term: Requirement) {
        match term {
            Requirement::And(items) => self.terms.extend(items),
            other => self.terms.push(other),
        }
    }

    fn end_alternative(&mut self) {
        match collapse(std::mem::take(&mut self.terms), Requirement::And) {
            Requirement::Or(items) => self.alternatives.extend(items),
            other => self.alternatives.push(other),
        }
    }

    fn finish(mut self) -> Requirement {
        self.end_alternative();
        collapse(self.alternatives, Requirement::Or)
    }
}

/// A group of one is just its member.
fn collapse(items: Vec<Requirement>, group: fn(Vec<Requirement>) -> Requirement) -> Requirement {
    match <[Requirement; 1]>::try_from(items) {
        Ok([only]) => only,
        Err(items) => group(items),
    }
}

/// Parsed queries each thread keeps, past which its cache starts over.
const CACHED_QUERIES: usize = 256;

thread_local! {
    /// The queries this thread parsed lately. Clients send the same few queries on every
    /// verification; parsing one of ten terms costs more than the rest of the check.
    static PARSED: std::cell::RefCell<std::collections::HashMap<Box<str>, std::sync::Arc<Requirement>, foldhash::fast::RandomState>> =
        std::cell::RefCell::new(std::collections::HashMap::default());
}

/// [`parse`], remembering each thread's last [`CACHED_QUERIES`] successful parses (an invalid
/// query is parsed again every time, so its error is always the parser's).
pub fn parse_cached(input: &str) -> Result<std::sync::Arc<Requirement>, QueryError> {
    if let Some(found) = PARSED.with_borrow(|parsed| parsed.get(input).cloned()) {
        return Ok(found);
    }
    let requirement = std::sync::Arc::new(parse(input)?);
    PARSED.with_borrow_mut(|parsed| {
        if parsed.len() >= CACHED_QUERIES {
            parsed.clear();
        }
        parsed.insert(Box::from(input), requirement.clone());
    });
    Ok(requirement)
}

/// Parses a permission query into a flat [`Requirement`] tree.
pub fn parse(input: &str) -> Result<Requirement, QueryError> {
    let mut lexer = Lexer::new(input);
    let mut token = lexer.next_token();
    if token.kind == Kind::End {
        return Err(QueryError::empty_input(token.position));
    }
    // The groups enclosing `group`, innermost last: one per open parenthesis.
    let mut enclosing: Vec<Group> = Vec::new();
    let mut group = Group::default();
    loop {
        // Expecting an operand.
        match token.kind {
            Kind::Permission => group.push_term(Requirement::Permission(token.text.to_string())),
            Kind::Open => {
                let next = lexer.next_token();
                if next.kind == Kind::Close {
                    return Err(QueryError::empty_parentheses(next.position));
                }
                if enclosing.len() >= MAX_NESTING {
                    return Err(QueryError::too_deep(token.position));
                }
                enclosing.push(std::mem::take(&mut group));
                token = next;
                continue;
            }
            Kind::End => return Err(QueryError::end_of_query(token.position)),
            Kind::Invalid(c) => return Err(QueryError::invalid_character(c, token.position)),
            Kind::And | Kind::Or | Kind::Close => return Err(QueryError::expected_operand(&token)),
        }
        // An operand is complete: expect an operator, a closing parenthesis or the end.
        token = lexer.next_token();
        loop {
            match token.kind {
                Kind::And => break,
                Kind::Or => {
                    group.end_alternative();
                    break;
                }
                Kind::Close => {
                    let Some(parent) = enclosing.pop() else {
                        return Err(QueryError::trailing(&token));
                    };
                    let inner = std::mem::replace(&mut group, parent).finish();
                    group.push_term(inner);
                    token = lexer.next_token();
                }
                Kind::End if enclosing.is_empty() => return Ok(group.finish()),
                Kind::End | Kind::Permission | Kind::Open if !enclosing.is_empty() => {
                    return Err(QueryError::missing_close(token.position))
                }
                Kind::Invalid(c) => return Err(QueryError::invalid_character(c, token.position)),
                Kind::End | Kind::Permission | Kind::Open => {
                    return Err(QueryError::trailing(&token))
                }
            }
        }
        token = lexer.next_token();
    }
}

/// Renders a tree as query text with as few parentheses as possible: only an OR inside an AND is
/// parenthesized. `parse(&format(&t)) == Ok(t)` for every tree that [`parse`] produces; for other
/// trees the text still means the same, except that an empty group (which no query can express)
/// renders as `()`.
pub fn format(req: &Requirement) -> String {
    let mut out = String::new();
    write_query(req, &mut out);
    out
}

/// Looks through groups of one, which mean just their member.
fn unwrap_singletons(mut req: &Requirement) -> &Requirement {
    loop {
        match req {
            Requirement::And(items) | Requirement::Or(items) if items.len() == 1 => {
                req = &items[0];
            }
            other => return other,
        }
    }
}

fn write_query(req: &Requirement, out: &mut String) {
    let (items, operator) = match unwrap_singletons(req) {
        Requirement::Permission(p) => {
            out.push_str(p);
            return;
        }
        Requirement::And(items) => (items, " AND "),
        Requirement::Or(items) => (items, " OR "),
    };
    if items.is_empty() {
        out.push_str("()");
        return;
    }
    let inside_and = operator == " AND ";
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(operator);
        }
        let item = unwrap_singletons(item);
        if inside_and && matches!(item, Requirement::Or(_)) {
            out.push('(');
            write_query(item, out);
            out.push(')');
        } else {
            write_query(item, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn p(name: &str) -> Requirement {
        Requirement::one(name)
    }

    fn and(items: Vec<Requirement>) -> Requirement {
        Requirement::And(items)
    }

    fn or(items: Vec<Requirement>) -> Requirement {
        Requirement::Or(items)
    }

    fn held(items: &[&str]) -> HashSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn error(input: &str) -> QueryError {
        parse(input).expect_err(input)
    }

    #[test]
    fn the_reference_examples_parse() {
        assert_eq!(parse("a AND b"), Ok(and(vec![p("a"), p("b")])));
        assert_eq!(
            parse("api.* OR api.edit"),
            Ok(or(vec![p("api.*"), p("api.edit")]))
        );
        assert_eq!(
            parse("system:admin:read AND (api.users/read OR api.users/write-all)"),
            Ok(and(vec![
                p("system:admin:read"),
                or(vec![p("api.users/read"), p("api.users/write-all")]),
            ]))
        );
        assert_eq!(
            parse("system:admin:* AND api_v2-test:read"),
            Ok(and(vec![p("system:admin:*"), p("api_v2-test:read")]))
        );
    }

    #[test]
    fn a_query_of_twenty_five_terms_parses_and_evaluates() {
        let terms: Vec<String> = (1..=25).map(|i| format!("perm.{i}")).collect();
        let query = format!(
            "({}) AND ({}) AND {}",
            terms[..10].join(" OR "),
            terms[10..20].join(" AND "),
            terms[20..].join(" AND ")
        );
        let req = parse(&query).expect("valid");
        let Requirement::And(parts) = &req else {
            panic!("expected an AND: {req:?}");
        };
        // The OR group, then the inner AND flattened into its parent: 1 + 10 + 5.
        assert_eq!(parts.len(), 16);
        let mut keys: Vec<&str> = terms[10..].iter().map(String::as_str).collect();
        keys.push("perm.7");
        assert!(req.is_satisfied_by(&held(&keys)));
        keys.pop();
        assert!(!req.is_satisfied_by(&held(&keys)));
    }

    #[test]
    fn the_four_bad_request_cases_report_unkeys_messages_and_positions() {
        let e = error("permission_1 AND");
        assert_eq!(
            e.message,
            "Unexpected end of query. Expected a permission identifier or opening parenthesis."
        );
        assert_eq!(e.position, 16);

        let e = error("(permission_1 AND permission_2");
        assert_eq!(
            e.message,
            "Missing closing parenthesis ')' at position 30. Every opening parenthesis must have \
             a matching closing parenthesis."
        );
        assert_eq!(e.position, 30);

        let e = error("permission_1 AND ()");
        assert_eq!(
            e.message,
            "Empty parentheses found at position 18. Parentheses must contain at least one \
             permission or expression."
        );
        assert_eq!(e.position, 18);

        let e = error("AND permission_1");
        assert_eq!(
            e.message,
            "Unexpected token 'AND' at position 0. Expected a permission identifier or opening \
             parenthesis."
        );
        assert_eq!(e.position, 0);
        assert_eq!(e.to_string(), e.message);
    }

    #[test]
    fn empty_and_blank_queries_are_rejected() {
        for input in ["", " ", " \t\r\n "] {
            let e = error(input);
            assert_eq!(
                e.message,
                "Unexpected end of input. Please provide a valid permission query."
            );
            assert_eq!(e.position, input.len());
        }
    }

    #[test]
    fn misplaced_operators_are_shown_as_written() {
        let e = error("a and or b");
        assert_eq!(e.position, 6);
        assert!(e
            .message
            .starts_with("Unexpected token 'or' at position 6. Expected"));
        let e = error("(Or a)");
        assert!(e
            .message
            .starts_with("Unexpected token 'Or' at position 1. Expected"));
        let e = error("a AND )");
        assert!(e
            .message
            .starts_with("Unexpected token ')' at position 6. Expected"));
    }

    #[test]
    fn content_after_a_complete_expression_is_rejected() {
        for (input, token, position) in [
            ("a b", "b", 2),
            ("a )", ")", 2),
            ("(a) (b)", "(", 4),
            ("a AND b)", ")", 7),
        ] {
            let e = error(input);
            assert_eq!(
                e.message,
                format!(
                    "Unexpected token '{token}' at position {position}. The query appears to \
                     have extra content after a valid expression."
                )
            );
            assert_eq!(e.position, position);
        }
    }

    #[test]
    fn extra_content_inside_parentheses_is_a_missing_closing_parenthesis() {
        let e = error("(a b)");
        assert_eq!(e.position, 3);
        assert!(e
            .message
            .starts_with("Missing closing parenthesis ')' at position 3."));
        assert_eq!(error("((a)").position, 4);
    }

    #[test]
    fn invalid_characters_are_named_with_their_byte_position() {
        let e = error("a AND b$");
        assert_eq!(
            e.message,
            "Invalid character '$' found in query at position 7. Only letters, numbers, dots, \
             underscores, hyphens, slashes, colons, asterisks, and parentheses are allowed."
        );
        assert_eq!(e.position, 7);
        // Byte offsets, not char offsets.
        let e = error("é OR ü");
        assert_eq!(e.position, 0);
        assert!(e.message.starts_with("Invalid character 'é'"));
        let e = error("a OR ü");
        assert_eq!(e.position, 5);
        let e = error("(ab\u{a0}");
        assert_eq!(e.position, 3);
        // Whitespace other than space, tab, CR and LF is not whitespace here.
        assert_eq!(error("a\u{c}b").position, 1);
    }

    #[test]
    fn the_first_problem_in_reading_order_wins() {
        assert!(error("a b $").message.contains("extra content"));
        assert!(error("a $ b").message.starts_with("Invalid character '$'"));
        assert!(error("($").message.starts_with("Invalid character '$'"));
        assert!(error("AND $").message.starts_with("Unexpected token 'AND'"));
    }

    #[test]
    fn operators_are_case_insensitive() {
        let expected = or(vec![and(vec![p("a"), p("b")]), p("c")]);
        for input in [
            "a AND b OR c",
            "a and b or c",
            "a aNd b Or c",
            "a And b oR c",
        ] {
            assert_eq!(parse(input), Ok(expected.clone()), "{input}");
        }
    }

    #[test]
    fn operators_are_whole_words_only() {
        assert_eq!(parse("ANDROID.x"), Ok(p("ANDROID.x")));
        assert_eq!(parse("order.read"), Ok(p("order.read")));
        assert_eq!(
            parse("ORnament and android OR a.and"),
            Ok(or(vec![and(vec![p("ORnament"), p("android")]), p("a.and")]))
        );
        // Parentheses and whitespace end a word.
        assert_eq!(
            parse("a AND(b OR\tc)"),
            Ok(and(vec![p("a"), or(vec![p("b"), p("c")])]))
        );
        assert_eq!(parse("(a)OR(b)"), Ok(or(vec![p("a"), p("b")])));
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(
            parse("a OR b AND c"),
            Ok(or(vec![p("a"), and(vec![p("b"), p("c")])]))
        );
        assert_eq!(
            parse("a AND b OR c AND d"),
            Ok(or(vec![
                and(vec![p("a"), p("b")]),
                and(vec![p("c"), p("d")])
            ]))
        );
        assert_eq!(
            parse("(a OR b) AND c"),
            Ok(and(vec![or(vec![p("a"), p("b")]), p("c")]))
        );
    }

    #[test]
    fn chains_and_redundant_parentheses_flatten() {
        assert_eq!(
            parse("a AND b AND c"),
            Ok(and(vec![p("a"), p("b"), p("c")]))
        );
        assert_eq!(parse("a OR b OR c"), Ok(or(vec![p("a"), p("b"), p("c")])));
        assert_eq!(parse("((((a))))"), Ok(p("a")));
        assert_eq!(
            parse("(a AND b) AND (c AND (d))"),
            Ok(and(vec![p("a"), p("b"), p("c"), p("d")]))
        );
        assert_eq!(
            parse("a OR ((b OR c)) OR (d AND e)"),
            Ok(or(vec![p("a"), p("b"), p("c"), and(vec![p("d"), p("e")])]))
        );
    }

    #[test]
    fn a_star_is_a_literal_character() {
        let req = parse("api.* OR api.edit").expect("valid");
        assert!(req.is_satisfied_by(&held(&["api.*"])));
        assert!(req.is_satisfied_by(&held(&["api.edit"])));
        assert!(!req.is_satisfied_by(&held(&["api.read"])));
    }

    #[test]
    fn cached_parses_are_the_parses_and_errors_are_not_cached() {
        let query = "a.b AND (c.d OR e.f)";
        let first = parse_cached(query).expect("valid");
        assert_eq!(*first, parse(query).expect("valid"));
        let again = parse_cached(query).expect("valid");
        assert!(
            std::sync::Arc::ptr_eq(&first, &again),
            "the second parse is the cached one"
        );
        let bad = "a.b AND";
        assert_eq!(parse_cached(bad), Err(parse(bad).expect_err("invalid")));
        assert_eq!(parse_cached(bad), Err(parse(bad).expect_err("invalid")));
        for i in 0..(CACHED_QUERIES + 10) {
            let q = format!("p{i}.x OR q.y");
            assert_eq!(*parse_cached(&q).expect("valid"), parse(&q).expect("valid"));
        }
    }

    #[test]
    fn parsed_queries_evaluate_against_held_permissions() {
        let req = parse("system:admin:read AND (billing.read OR billing.write)").expect("valid");
        assert!(req.is_satisfied_by(&held(&["system:admin:read", "billing.write"])));
        assert!(!req.is_satisfied_by(&held(&["system:admin:read"])));
        assert!(!req.is_satisfied_by(&held(&["billing.read", "billing.write"])));
        assert_eq!(
            req.check(&held(&["billing.read"])),
            Err("Missing permission: 'system:admin:read'".to_string())
        );
        assert_eq!(
            req.check(&held(&["system:admin:read"])),
            Err("Missing one of these permissions: 'billing.read' or 'billing.write'".to_string())
        );
    }

    #[test]
    fn format_uses_only_the_parentheses_it_needs() {
        for (input, text) in [
            ("a", "a"),
            ("((a))", "a"),
            ("a or b AND c", "a OR b AND c"),
            ("(a OR b) AND c", "(a OR b) AND c"),
            ("(a AND b) OR (c AND d)", "a AND b OR c AND d"),
            ("a AND (b AND c)", "a AND b AND c"),
        ] {
            assert_eq!(format(&parse(input).expect(input)), text, "{input}");
        }
        // Groups of one mean their member, even where parse would never produce them.
        let odd = and(vec![p("x"), and(vec![or(vec![p("a"), p("b")])])]);
        assert_eq!(format(&odd), "x AND (a OR b)");
        assert_eq!(format(&or(vec![])), "()");
    }

    #[test]
    fn five_hundred_levels_of_redundant_parentheses_fit_in_a_thousand_characters() {
        let query = format!("{}a{}", "(".repeat(499), ")".repeat(499));
        assert_eq!(query.len(), 999);
        assert_eq!(parse(&query), Ok(p("a")));
        let unclosed = "(".repeat(1000);
        assert_eq!(error(&unclosed).position, 1000);
        assert!(error(&unclosed)
            .message
            .starts_with("Unexpected end of query."));
        let unclosed = format!("{}a", "(".repeat(999));
        assert_eq!(error(&unclosed).position, 1000);
        assert!(error(&unclosed)
            .message
            .starts_with("Missing closing parenthesis ')' at position 1000."));
    }

    /// `a0 AND (a1 OR (a2 AND (...)))`, `levels` parentheses deep: every level adds tree depth.
    fn alternating(levels: usize, compact: bool) -> String {
        let mut query = String::new();
        for i in 0..levels {
            let op = if i % 2 == 0 { "AND" } else { "OR" };
            if compact {
                query.push_str(&format!("a {op}("));
            } else {
                query.push_str(&format!("a{i} {op} ("));
            }
        }
        query.push('z');
        query.push_str(&")".repeat(levels));
        query
    }

    fn depth(req: &Requirement) -> usize {
        match req {
            Requirement::Permission(_) => 1,
            Requirement::And(items) | Requirement::Or(items) => {
                1 + items.iter().map(depth).max().unwrap_or(0)
            }
        }
    }

    fn exercise_deep_tree(query: &str, levels: usize) {
        let req = parse(query).expect("valid");
        assert_eq!(depth(&req), levels + 1);
        assert!(!req.is_satisfied_by(&HashSet::new()));
        let _ = req.check(&held(&["a"]));
        let _ = req.to_string();
        assert_eq!(parse(&format(&req)).as_ref(), Ok(&req));
        drop(req);
    }

    #[test]
    fn the_deepest_tree_a_thousand_characters_can_build_is_harmless() {
        let levels = (1..)
            .take_while(|&n| alternating(n, true).len() <= 1000)
            .last()
            .unwrap_or(1);
        let query = alternating(levels, true);
        assert!(query.len() <= 1000 && levels > 140, "{levels}");
        exercise_deep_tree(&query, levels);
    }

    #[test]
    fn nesting_is_limited_only_beyond_what_the_schema_allows() {
        exercise_deep_tree(&alternating(MAX_NESTING, false), MAX_NESTING);
        let too_deep = alternating(MAX_NESTING + 1, false);
        let e = error(&too_deep);
        assert!(
            e.message
                .starts_with("Query is nested too deeply at position"),
            "{e}"
        );
        assert_eq!(&too_deep[e.position..e.position + 1], "(");
        let e = error(&"(".repeat(100_000));
        assert_eq!(e.position, MAX_NESTING);
    }

    // ---- property tests -------------------------------------------------------------------

    fn permission_name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._*:/-]{1,10}".prop_filter("operators are not permissions", |s| {
            !s.eq_ignore_ascii_case("and") && !s.eq_ignore_ascii_case("or")
        })
    }

    fn any_tree() -> impl Strategy<Value = Requirement> {
        permission_name()
            .prop_map(Requirement::Permission)
            .prop_recursive(6, 64, 5, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 1..5).prop_map(Requirement::And),
                    prop::collection::vec(inner, 1..5).prop_map(Requirement::Or),
                ]
            })
    }

    /// The tree `parse` would build for the same meaning: same-kind groups merged, groups of one
    /// replaced by their member.
    fn normalize(req: Requirement) -> Requirement {
        let (items, is_and) = match req {
            Requirement::Permission(_) => return req,
            Requirement::And(items) => (items, true),
            Requirement::Or(items) => (items, false),
        };
        let mut merged = Vec::new();
        for item in items.into_iter().map(normalize) {
            match item {
                Requirement::And(inner) if is_and => merged.extend(inner),
                Requirement::Or(inner) if !is_and => merged.extend(inner),
                other => merged.push(other),
            }
        }
        if is_and {
            collapse(merged, Requirement::And)
        } else {
            collapse(merged, Requirement::Or)
        }
    }

    /// Writes `req` as a query the way a person might: operators in any case, any whitespace,
    /// redundant parentheses. `noise` supplies the choices.
    fn render_noisy(req: &Requirement, noise: &mut impl Iterator<Item = u8>, out: &mut String) {
        const SPACES: [&str; 5] = [" ", "  ", "\t", "\n", "\r\n "];
        const ANDS: [&str; 4] = ["AND", "and", "And", "aNd"];
        const ORS: [&str; 4] = ["OR", "or", "Or", "oR"];
        fn pick(noise: &mut impl Iterator<Item = u8>, n: usize) -> usize {
            usize::from(noise.next().unwrap_or(0)) % n
        }
        let redundant = pick(noise, 4) == 0;
        if redundant {
            out.push('(');
            out.push_str(SPACES[pick(noise, SPACES.len())]);
        }
        match unwrap_singletons(req) {
            Requirement::Permission(name) => out.push_str(name),
            Requirement::And(items) | Requirement::Or(items) if items.is_empty() => {
                unreachable!("generated groups are never empty")
            }
            group @ (Requirement::And(items) | Requirement::Or(items)) => {
                let is_and = matches!(group, Requirement::And(_));
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        let words = if is_and { &ANDS } else { &ORS };
                        out.push_str(SPACES[pick(noise, SPACES.len())]);
                        out.push_str(words[pick(noise, words.len())]);
                        out.push_str(SPACES[pick(noise, SPACES.len())]);
                    }
                    let needs = is_and && matches!(unwrap_singletons(item), Requirement::Or(_));
                    if needs {
                        out.push('(');
                    }
                    render_noisy(item, noise, out);
                    if needs {
                        out.push(')');
                    }
                }
            }
        }
        if redundant {
            out.push(')');
        }
    }

    fn render_with(req: &Requirement, noise: &[u8]) -> String {
        let mut out = String::new();
        render_noisy(req, &mut noise.iter().copied().cycle(), &mut out);
        out
    }

    /// Every permission named anywhere in the tree.
    fn leaves(req: &Requirement, into: &mut HashSet<String>) {
        match req {
            Requirement::Permission(name) => {
                into.insert(name.clone());
            }
            Requirement::And(items) | Requirement::Or(items) => {
                items.iter().for_each(|item| leaves(item, into))
            }
        }
    }

    /// Strings built from the query alphabet, operators and parentheses, with some bad characters.
    fn query_like() -> impl Strategy<Value = String> {
        let fragment = prop::sample::select(vec![
            "a", "b.c", "api.*", "x:y/z", "ANDROID", "order", "AND", "and", "Or", "OR", "(", ")",
            "(", ")", " ", " ", "\t", "\n", "\r", "é", "$", "\u{0}", "\u{a0}", "😀",
        ]);
        prop::collection::vec(fragment, 0..240).prop_map(|parts| parts.concat())
    }

    fn arbitrary_text() -> impl Strategy<Value = String> {
        prop::collection::vec(any::<char>(), 0..1200).prop_map(String::from_iter)
    }

    /// What must hold for any input: no panic, a position inside the input, and a parsed tree
    /// that survives formatting.
    fn check_any_input(input: &str) -> Result<(), TestCaseError> {
        match parse(input) {
            Ok(req) => {
                let text = format(&req);
                prop_assert_eq!(parse(&text), Ok(req), "formatted as {:?}", text);
            }
            Err(e) => {
                prop_assert!(e.position <= input.len(), "{:?} for {:?}", e, input);
                prop_assert!(
                    input.is_char_boundary(e.position),
                    "{:?} for {:?}",
                    e,
                    input
                );
                prop_assert_eq!(e.to_string(), e.message);
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics_and_errors_point_inside_it(input in arbitrary_text()) {
            check_any_input(&input)?;
        }

        #[test]
        fn query_like_text_never_panics_and_errors_point_inside_it(input in query_like()) {
            check_any_input(&input)?;
        }

        #[test]
        fn formatting_a_parsed_tree_gives_it_back(tree in any_tree()) {
            let tree = normalize(tree);
            let text = format(&tree);
            prop_assert_eq!(parse(&text), Ok(tree), "formatted as {:?}", text);
        }

        #[test]
        fn however_a_query_is_written_it_parses_to_its_normal_form(
            tree in any_tree(),
            noise in prop::collection::vec(any::<u8>(), 1..64),
        ) {
            let text = render_with(&tree, &noise);
            let parsed = parse(&text);
            prop_assert_eq!(parsed.as_ref(), Ok(&normalize(tree.clone())), "text {:?}", text);
            if let Ok(parsed) = parsed {
                let again = format(&parsed);
                prop_assert_eq!(parse(&again), Ok(parsed), "formatted as {:?}", again);
                let mut all = HashSet::new();
                leaves(&tree, &mut all);
                prop_assert!(tree_agrees(&tree, &all));
            }
        }

        #[test]
        fn deep_queries_within_the_length_limit_parse_and_evaluate(
            operators in prop::collection::vec(any::<bool>(), 1..400),
            wrappers in 0usize..300,
            held_mask in any::<u64>(),
        ) {
            let mut query = String::new();
            let mut opened = 0;
            for (i, is_and) in operators.iter().enumerate() {
                let step = format!("p{} {}(", i % 64, if *is_and { "AND" } else { "OR" });
                if query.len() + step.len() + 1 + 2 * (opened + 1) > 1000 {
                    break;
                }
                query.push_str(&step);
                opened += 1;
            }
            query.push('z');
            query.push_str(&")".repeat(opened));
            let spare = (1000 - query.len()) / 2;
            let wrap = wrappers.min(spare);
            let query = format!("{}{}{}", "(".repeat(wrap), query, ")".repeat(wrap));
            prop_assert!(query.len() <= 1000);

            let req = parse(&query).map_err(|e| TestCaseError::fail(e.message))?;
            let mut all = HashSet::new();
            leaves(&req, &mut all);
            prop_assert!(req.is_satisfied_by(&all));
            let some: HashSet<String> =
                all.iter().filter(|name| held_mask & (1 << (name.bytes().map(u32::from).sum::<u32>() % 64)) != 0).cloned().collect();
            let _ = req.is_satisfied_by(&some);
            let _ = req.check(&some);
            prop_assert_eq!(parse(&format(&req)), Ok(req));
        }
    }

    /// With every leaf held, any tree of AND and OR is satisfied.
    fn tree_agrees(tree: &Requirement, all: &HashSet<String>) -> bool {
        tree.is_satisfied_by(all) && normalize(tree.clone()).is_satisfied_by(all)
    }
}
