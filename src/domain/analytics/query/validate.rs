//! Steps 5 to 10 and 12 of §1: the checks that run on the parsed tree before anything is
//! emitted, each over the whole tree, in §1's order (so a query with two faults gets the error of
//! the earlier step).

use std::collections::HashSet;

use sqlparser::ast::{Expr, InTarget, ObjectName, ObjectNamePart, Query, SetExpr, TableFactor};
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use super::walk::{walk, Node};
use super::{catalog, functions, Family, QueryError, QueryErrorCode, Result};
use super::{MAX_AST_DEPTH, MAX_AST_NODES, MAX_PROJECTED_COLUMNS};

/// The names of the user's CTEs (lowercased), anywhere in the query.
pub(crate) type CteRegistry = HashSet<String>;

/// Step 4: a SELECT, or set operations of SELECTs.
pub(crate) fn is_select(q: &Query) -> bool {
    fn body(s: &SetExpr) -> bool {
        match s {
            SetExpr::Select(_) => true,
            SetExpr::Query(q) => is_select(q),
            SetExpr::SetOperation { left, right, .. } => body(left) && body(right),
            _ => false,
        }
    }
    body(&q.body)
}

pub(crate) fn validate(text: &str, top: &Query, family: Family) -> Result<CteRegistry> {
    let root = Node::Query(top);
    // Step 5.
    walk(root, |n, _| match n {
        Node::Query(q) if q.settings.is_some() => {
            Err(QueryError::query("SETTINGS clauses are not allowed"))
        }
        _ => Ok(()),
    })?;
    // Step 6.
    let mut nodes = 0usize;
    let mut projected = 0usize;
    walk(root, |n, depth| {
        nodes += 1;
        if nodes > MAX_AST_NODES || depth > MAX_AST_DEPTH {
            return Err(QueryError::query("Analytics query is too complex"));
        }
        if let Node::Select(s) = n {
            projected += s.projection.len();
        }
        Ok(())
    })?;
    if projected > MAX_PROJECTED_COLUMNS {
        return Err(QueryError::query(
            "Analytics query projects too many columns",
        ));
    }
    // Step 7.
    let mut ctes = CteRegistry::new();
    walk(root, |n, _| {
        if let Node::Query(q) = n {
            for cte in q.with.iter().flat_map(|w| &w.cte_tables) {
                let name = &cte.alias.name.value;
                if catalog::conflicts_with_public(name).is_some() {
                    return Err(QueryError::new(
                        QueryErrorCode::InvalidTable,
                        format!("CTE name '{name}' conflicts with a public table name"),
                    ));
                }
                ctes.insert(name.to_lowercase());
            }
        }
        Ok(())
    })?;
    // Step 8.
    table_backed_in(text, root)?;
    // Step 9.
    if !top_has_from(&top.body) {
        return Err(QueryError::query("Query must have a FROM clause"));
    }
    walk(root, |n, _| {
        if let Node::Table(TableFactor::Table {
            name, args: None, ..
        }) = n
        {
            let allowed = match single_name(name) {
                Some(n) => {
                    catalog::public_table(family, n).is_some() || ctes.contains(&n.to_lowercase())
                }
                None => false,
            };
            if !allowed {
                return Err(QueryError::table(&display_name(name)));
            }
        }
        Ok(())
    })?;
    // Step 12.
    walk(root, |n, _| match n {
        Node::Expr(e) => check_function(e),
        Node::Table(t) => check_table_function(t),
        _ => Ok(()),
    })?;
    Ok(ctes)
}

const TABLE_BACKED_IN: &str =
    "Table-backed IN expressions are not supported; use a literal list or a subquery";

/// Step 8. The parser reads `x IN t` and `x IN numbers(10)` as one-element lists, so the tokens
/// tell them apart: an IN must be followed by `(` or `[`.
fn table_backed_in(text: &str, root: Node<'_>) -> Result<()> {
    walk(root, |n, _| match n {
        Node::Expr(Expr::In {
            target: InTarget::Table { .. } | InTarget::Unnest(_),
            ..
        }) => Err(QueryError::query(TABLE_BACKED_IN)),
        Node::Expr(Expr::In {
            target: InTarget::List(list),
            ..
        }) if list.iter().any(|e| matches!(e, Expr::Dictionary(_))) => {
            Err(QueryError::query(TABLE_BACKED_IN))
        }
        _ => Ok(()),
    })?;
    let Ok(tokens) = Tokenizer::new(&ClickHouseDialect {}, text).tokenize() else {
        return Ok(());
    };
    let mut significant = tokens.iter().filter(|t| {
        !matches!(
            t,
            Token::Whitespace(
                Whitespace::Space
                    | Whitespace::Newline
                    | Whitespace::Tab
                    | Whitespace::SingleLineComment { .. }
                    | Whitespace::MultiLineComment(_)
            )
        )
    });
    // POSITION(a IN b) has an IN of its own: track which parentheses open a position() call.
    let mut parens: Vec<bool> = Vec::new();
    let mut after_position = false;
    while let Some(token) = significant.next() {
        match token {
            Token::LParen => parens.push(after_position),
            Token::RParen => {
                parens.pop();
            }
            Token::Word(w) if w.keyword == Keyword::IN && w.quote_style.is_none() => {
                if parens.last() == Some(&true) {
                    after_position = false;
                    continue;
                }
                match significant.next() {
                    Some(Token::LParen) => parens.push(false),
                    Some(Token::LBracket) => {}
                    _ => return Err(QueryError::query(TABLE_BACKED_IN)),
                }
            }
            _ => {}
        }
        after_position = matches!(token, Token::Word(w) if w.value.eq_ignore_ascii_case("position") && w.quote_style.is_none());
    }
    Ok(())
}

fn top_has_from(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(s) => !s.from.is_empty(),
        SetExpr::Query(q) => top_has_from(&q.body),
        SetExpr::SetOperation { left, .. } => top_has_from(left),
        _ => false,
    }
}

pub(crate) fn single_name(name: &ObjectName) -> Option<&str> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(i)] => Some(i.value.as_str()),
        _ => None,
    }
}

pub(crate) fn display_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => i.value.clone(),
            ObjectNamePart::Function(f) => f.name.value.clone(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Step 12 for one expression.
fn check_function(e: &Expr) -> Result<()> {
    let name = match e {
        Expr::Function(f) => display_name(&f.name),
        Expr::Position { .. } => "position".into(),
        Expr::Extract { .. } => "extract".into(),
        Expr::Overlay { .. } => "overlay".into(),
        Expr::Convert { .. } => "convert".into(),
        _ => return Ok(()),
    };
    if functions::is_allowed(&name) {
        Ok(())
    } else {
        Err(QueryError::function(&name))
    }
}

fn check_table_function(t: &TableFactor) -> Result<()> {
    let name = match t {
        TableFactor::Table {
            name,
            args: Some(_),
            ..
        }
        | TableFactor::Function { name, .. } => display_name(name),
        TableFactor::TableFunction {
            expr: Expr::Function(f),
            ..
        } => display_name(&f.name),
        TableFactor::TableFunction { .. } => "table".into(),
        TableFactor::UNNEST { .. } => "unnest".into(),
        TableFactor::JsonTable { .. } => "json_table".into(),
        TableFactor::OpenJsonTable { .. } => "openjson".into(),
        TableFactor::XmlTable { .. } => "xmltable".into(),
        _ => return Ok(()),
    };
    Err(QueryError::new(
        QueryErrorCode::InvalidFunction,
        format!("Table function '{name}' is not allowed for security reasons"),
    ))
}
