//! An iterative walk over the parsed tree, for the checks of steps 5 to 12. Iterative so that a
//! long left-deep chain (`1+1+1+...`, which the parser builds without recursion) cannot exhaust
//! the stack here; the depth of every node is reported so step 6 can refuse deep trees before
//! the (recursive) emitter sees them.
//!
//! The walk knows the children of every construct the emitter translates and of the common
//! others; a child it does not know is not visited, which is safe because the emitter refuses
//! whatever it does not translate.

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, JoinConstraint,
    JoinOperator, LimitClause, OrderByKind, Query, Select, SelectItem, SetExpr, TableFactor,
};

#[derive(Clone, Copy)]
pub(crate) enum Node<'a> {
    Query(&'a Query),
    SetExpr(&'a SetExpr),
    Select(&'a Select),
    Table(&'a TableFactor),
    Expr(&'a Expr),
}

/// Visits every node from `root` (pre-order), with its depth (root = 1). The visitor stops the
/// walk by returning an error.
pub(crate) fn walk<'a, E>(
    root: Node<'a>,
    mut visit: impl FnMut(Node<'a>, usize) -> Result<(), E>,
) -> Result<(), E> {
    let mut stack = vec![(root, 1usize)];
    let mut children = Vec::new();
    while let Some((node, depth)) = stack.pop() {
        visit(node, depth)?;
        children.clear();
        push_children(node, &mut children);
        // Reverse so the leftmost child is visited first.
        stack.extend(children.drain(..).rev().map(|c| (c, depth + 1)));
    }
    Ok(())
}

fn push_function_args<'a>(args: &'a FunctionArguments, out: &mut Vec<Node<'a>>) {
    match args {
        FunctionArguments::None => {}
        FunctionArguments::Subquery(q) => out.push(Node::Query(q)),
        FunctionArguments::List(list) => {
            for arg in &list.args {
                let e = match arg {
                    FunctionArg::Named { arg, .. } | FunctionArg::Unnamed(arg) => arg,
                    FunctionArg::ExprNamed { name, arg, .. } => {
                        out.push(Node::Expr(name));
                        arg
                    }
                };
                if let FunctionArgExpr::Expr(e) = e {
                    out.push(Node::Expr(e));
                }
            }
        }
    }
}

fn push_children<'a>(node: Node<'a>, out: &mut Vec<Node<'a>>) {
    match node {
        Node::Query(q) => {
            if let Some(with) = &q.with {
                out.extend(with.cte_tables.iter().map(|c| Node::Query(&c.query)));
            }
            out.push(Node::SetExpr(&q.body));
            if let Some(order) = &q.order_by {
                if let OrderByKind::Expressions(items) = &order.kind {
                    out.extend(items.iter().map(|o| Node::Expr(&o.expr)));
                }
            }
            match &q.limit_clause {
                Some(LimitClause::LimitOffset {
                    limit,
                    offset,
                    limit_by,
                }) => {
                    out.extend(limit.iter().map(Node::Expr));
                    out.extend(offset.iter().map(|o| Node::Expr(&o.value)));
                    out.extend(limit_by.iter().map(Node::Expr));
                }
                Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
                    out.push(Node::Expr(offset));
                    out.push(Node::Expr(limit));
                }
                None => {}
            }
        }
        Node::SetExpr(s) => match s {
            SetExpr::Select(sel) => out.push(Node::Select(sel)),
            SetExpr::Query(q) => out.push(Node::Query(q)),
            SetExpr::SetOperation { left, right, .. } => {
                out.push(Node::SetExpr(left));
                out.push(Node::SetExpr(right));
            }
            _ => {}
        },
        Node::Select(sel) => {
            for item in &sel.projection {
                match item {
                    SelectItem::UnnamedExpr(e)
                    | SelectItem::ExprWithAlias { expr: e, .. }
                    | SelectItem::ExprWithAliases { expr: e, .. } => out.push(Node::Expr(e)),
                    SelectItem::QualifiedWildcard(..) | SelectItem::Wildcard(_) => {}
                }
            }
            for twj in &sel.from {
                out.push(Node::Table(&twj.relation));
                for join in &twj.joins {
                    // ARRAY JOIN names a column, not a table (the emitter refuses it).
                    if !matches!(
                        join.join_operator,
                        JoinOperator::ArrayJoin
                            | JoinOperator::LeftArrayJoin
                            | JoinOperator::InnerArrayJoin
                    ) {
                        out.push(Node::Table(&join.relation));
                    }
                    if let Some(JoinConstraint::On(e)) = join_constraint(&join.join_operator) {
                        out.push(Node::Expr(e));
                    }
                }
            }
            out.extend(sel.prewhere.iter().map(Node::Expr));
            out.extend(sel.selection.iter().map(Node::Expr));
            if let GroupByExpr::Expressions(exprs, _) = &sel.group_by {
                out.extend(exprs.iter().map(Node::Expr));
            }
            out.extend(sel.having.iter().map(Node::Expr));
            out.extend(sel.qualify.iter().map(Node::Expr));
            out.extend(sel.sort_by.iter().map(|o| Node::Expr(&o.expr)));
        }
        Node::Table(t) => match t {
            TableFactor::Table {
                args: Some(args), ..
            } => {
                for arg in &args.args {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = arg {
                        out.push(Node::Expr(e));
                    }
                }
            }
            TableFactor::Derived { subquery, .. } => out.push(Node::Query(subquery)),
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                out.push(Node::Table(&table_with_joins.relation));
                for join in &table_with_joins.joins {
                    out.push(Node::Table(&join.relation));
                    if let Some(JoinConstraint::On(e)) = join_constraint(&join.join_operator) {
                        out.push(Node::Expr(e));
                    }
                }
            }
            TableFactor::TableFunction { expr, .. } => out.push(Node::Expr(expr)),
            TableFactor::UNNEST { array_exprs, .. } => {
                out.extend(array_exprs.iter().map(Node::Expr));
            }
            _ => {}
        },
        Node::Expr(e) => push_expr_children(e, out),
    }
}

pub(crate) fn join_constraint(op: &JoinOperator) -> Option<&JoinConstraint> {
    match op {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c)
        | JoinOperator::Semi(c)
        | JoinOperator::LeftSemi(c)
        | JoinOperator::RightSemi(c)
        | JoinOperator::Anti(c)
        | JoinOperator::LeftAnti(c)
        | JoinOperator::RightAnti(c)
        | JoinOperator::StraightJoin(c) => Some(c),
        JoinOperator::AsOf { constraint, .. } => Some(constraint),
        _ => None,
    }
}

fn push_expr_children<'a>(e: &'a Expr, out: &mut Vec<Node<'a>>) {
    use sqlparser::ast::InTarget;
    match e {
        Expr::IsFalse(x)
        | Expr::IsNotFalse(x)
        | Expr::IsTrue(x)
        | Expr::IsNotTrue(x)
        | Expr::IsNull(x)
        | Expr::IsNotNull(x)
        | Expr::IsUnknown(x)
        | Expr::IsNotUnknown(x)
        | Expr::Nested(x)
        | Expr::UnaryOp { expr: x, .. }
        | Expr::Cast { expr: x, .. }
        | Expr::Convert { expr: x, .. }
        | Expr::Extract { expr: x, .. }
        | Expr::Ceil { expr: x, .. }
        | Expr::Floor { expr: x, .. }
        | Expr::Collate { expr: x, .. }
        | Expr::OuterJoin(x)
        | Expr::Prior(x)
        | Expr::Named { expr: x, .. }
        | Expr::JsonAccess { value: x, .. }
        | Expr::IsJson { expr: x, .. }
        | Expr::IsNormalized { expr: x, .. } => out.push(Node::Expr(x)),
        Expr::IsDistinctFrom(a, b)
        | Expr::IsNotDistinctFrom(a, b)
        | Expr::BinaryOp {
            left: a, right: b, ..
        }
        | Expr::AnyOp {
            left: a, right: b, ..
        }
        | Expr::AllOp {
            left: a, right: b, ..
        }
        | Expr::AtTimeZone {
            timestamp: a,
            time_zone: b,
        }
        | Expr::Position { expr: a, r#in: b }
        | Expr::SimilarTo {
            expr: a,
            pattern: b,
            ..
        }
        | Expr::RLike {
            expr: a,
            pattern: b,
            ..
        } => {
            out.push(Node::Expr(a));
            out.push(Node::Expr(b));
        }
        Expr::Like {
            expr,
            pattern,
            escape_char,
            ..
        }
        | Expr::ILike {
            expr,
            pattern,
            escape_char,
            ..
        } => {
            out.push(Node::Expr(expr));
            out.push(Node::Expr(pattern));
            out.extend(escape_char.iter().map(|x| Node::Expr(x)));
        }
        Expr::In { expr, target, .. } => {
            out.push(Node::Expr(expr));
            match target {
                InTarget::List(list) => out.extend(list.iter().map(Node::Expr)),
                InTarget::Subquery(q) => out.push(Node::Query(q)),
                InTarget::Unnest(x) => out.push(Node::Expr(x)),
                InTarget::Table { .. } => {}
            }
        }
        Expr::Between {
            expr, low, high, ..
        } => {
            out.push(Node::Expr(expr));
            out.push(Node::Expr(low));
            out.push(Node::Expr(high));
        }
        Expr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            out.push(Node::Expr(expr));
            out.extend(substring_from.iter().map(|x| Node::Expr(x)));
            out.extend(substring_for.iter().map(|x| Node::Expr(x)));
        }
        Expr::Trim {
            expr,
            trim_what,
            trim_characters,
            ..
        } => {
            out.push(Node::Expr(expr));
            out.extend(trim_what.iter().map(|x| Node::Expr(x)));
            if let Some(chars) = trim_characters {
                out.extend(chars.iter().map(Node::Expr));
            }
        }
        Expr::Overlay {
            expr,
            overlay_what,
            overlay_from,
            overlay_for,
        } => {
            out.push(Node::Expr(expr));
            out.push(Node::Expr(overlay_what));
            out.push(Node::Expr(overlay_from));
            out.extend(overlay_for.iter().map(|x| Node::Expr(x)));
        }
        Expr::Function(f) => {
            push_function_args(&f.parameters, out);
            push_function_args(&f.args, out);
            out.extend(f.filter.iter().map(|x| Node::Expr(x)));
            out.extend(f.within_group.iter().map(|o| Node::Expr(&o.expr)));
        }
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            out.extend(operand.iter().map(|x| Node::Expr(x)));
            for c in conditions {
                out.push(Node::Expr(&c.condition));
                out.push(Node::Expr(&c.result));
            }
            out.extend(else_result.iter().map(|x| Node::Expr(x)));
        }
        Expr::Exists { subquery, .. } | Expr::Subquery(subquery) => {
            out.push(Node::Query(subquery));
        }
        Expr::GroupingSets(sets) | Expr::Cube(sets) | Expr::Rollup(sets) => {
            out.extend(sets.iter().flatten().map(Node::Expr));
        }
        Expr::Tuple(items) => out.extend(items.iter().map(Node::Expr)),
        Expr::Array(a) => out.extend(a.elem.iter().map(Node::Expr)),
        Expr::Interval(i) => out.push(Node::Expr(&i.value)),
        Expr::Lambda(l) => out.push(Node::Expr(&l.body)),
        Expr::CompoundFieldAccess { root, .. } => out.push(Node::Expr(root)),
        Expr::Dictionary(fields) => out.extend(fields.iter().map(|f| Node::Expr(&f.value))),
        _ => {}
    }
}
