//! What a message template may say, decided before minijinja compiles it: the source is
//! tokenised and parsed with minijinja's own lexer and parser (its `unstable_machinery`),
//! checked against an allow-list, and rewritten so that every `~` and `+` goes through a
//! filter that checks sizes.
//!
//! The checks come in an order that keeps each step safe for the next: minijinja's parser,
//! code generator and the drop of its syntax tree recurse once per operator, `elif` and
//! nested block, so a 40 KB chain `a ~ a ~ …` overflowed a 2 MiB thread stack and aborted
//! the whole process. Depth is therefore bounded on the token stream, which is read without
//! recursion, before anything builds a tree.
//!
//! The allow-list denies by default: a statement, operator or expression minijinja adds in a
//! later version is refused until it is listed here.

use super::{Line, MAX_NESTING, MAX_SOURCE_BYTES, MAX_TAG_TOKENS, TemplateError};
use minijinja::machinery::ast::{BinOpKind, CallArg, Expr, Stmt};
use minijinja::machinery::{Token, WhitespaceConfig, parse, tokenize};
use minijinja::syntax::SyntaxConfig;

/// Filters a template may name, with how they are documented (`docs/content.md`).
pub(super) const FILTERS: &[&str] = &[
    "abs",
    "capitalize",
    "default",
    "first",
    "float",
    "int",
    "join",
    "last",
    "length",
    "lower",
    "replace",
    "round",
    "string",
    "title",
    "trim",
    "truncate",
    "upper",
    "urlencode",
];

/// Tests a template may name (`x is defined`).
pub(super) const TESTS: &[&str] = &["defined", "undefined", "none", "number", "string"];

/// Words of the template language, which a variable may not be called.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "is",
    "if",
    "else",
    "elif",
    "endif",
    "for",
    "endfor",
    "recursive",
];

/// The names of the filters the rewrite inserts, as literals so that the texts inserted
/// can be built with `concat!`. Templates cannot name them: they are not in [`FILTERS`].
macro_rules! inserted_filter {
    (concat) => {
        "__relais_concat"
    };
    (number) => {
        "__relais_number"
    };
    (operand) => {
        "__relais_operand"
    };
    (indexable) => {
        "__relais_indexable"
    };
}

/// Every `a ~ b ~ c` becomes one call of this filter.
pub(super) const CONCAT_FILTER: &str = inserted_filter!(concat);
/// Both operands of every `a + b` go through this filter.
pub(super) const NUMBER_FILTER: &str = inserted_filter!(number);
/// Every operand of a comparison (`==`, `<`, `in`…) goes through this filter, which
/// charges the render for the values minijinja is about to compare.
pub(super) const OPERAND_FILTER: &str = inserted_filter!(operand);
/// Every subscripted value (`x[i]`, `x.0`) goes through this filter: indexing a text
/// walks its characters.
pub(super) const INDEXABLE_FILTER: &str = inserted_filter!(indexable);

const OPERAND_CLOSE: &str = concat!(")|", inserted_filter!(operand));
const INDEXABLE_CLOSE: &str = concat!(")|", inserted_filter!(indexable), ")");
const CONCAT_FIRST: &str = concat!(")|", inserted_filter!(concat), "(");
const NUMBER_NEXT: &str = concat!(")|", inserted_filter!(number), "+(");
const NUMBER_CLOSE: &str = concat!(")|", inserted_filter!(number));

/// Checks `source` and returns the text minijinja compiles: `source` with `a ~ b` written
/// `(a)|__relais_concat(b)`, `a + b` written `(a)|__relais_number+(b)|__relais_number`,
/// `a == b` written `(a)|__relais_operand == (b)|__relais_operand` (the same for every
/// comparison), and `x[i]` written `((x)|__relais_indexable)[i]`. No line break is added
/// or removed, so minijinja's line numbers are the user's.
pub(super) fn check_and_rewrite(source: &str) -> Result<String, TemplateError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(TemplateError::SourceTooLong {
            len: source.len(),
            max: MAX_SOURCE_BYTES,
        });
    }
    check_shape(source)?;
    let tree = parse(source, "message", syntax(), whitespace_config())
        .map_err(|err| syntax_error(&err))?;
    let mut walk = Walk {
        source,
        edits: Vec::new(),
    };
    walk.stmt(&tree, 0)?;
    apply(source, walk.edits).ok_or_else(|| TemplateError::Syntax {
        line: Line(None),
        message: "the template could not be checked".into(),
    })
}

/// minijinja's default delimiters, as the environment uses.
// A unit struct only while minijinja's `custom_syntax` feature is off.
#[allow(clippy::default_constructed_unit_structs)]
fn syntax() -> SyntaxConfig {
    SyntaxConfig::default()
}

fn whitespace_config() -> WhitespaceConfig {
    WhitespaceConfig {
        keep_trailing_newline: true,
        lstrip_blocks: false,
        trim_blocks: false,
    }
}

pub(super) fn syntax_error(err: &minijinja::Error) -> TemplateError {
    TemplateError::Syntax {
        line: Line(err.line()),
        message: super::describe(err),
    }
}

/// Bounds the length of every tag and the nesting of blocks, on the token stream.
fn check_shape(source: &str) -> Result<(), TemplateError> {
    // One entry per open `if`/`for`: how many levels it adds (each `elif` adds one, since
    // minijinja nests it inside the previous branch).
    let mut open: Vec<usize> = Vec::new();
    let mut depth = 0;
    let mut in_tag: Option<usize> = None;
    let mut keyword_next = false;
    let tokens = tokenize(source, false, syntax(), whitespace_config());
    for token in tokens {
        let (token, span) = token.map_err(|err| syntax_error(&err))?;
        let line = Line(Some(usize::from(span.start_line)));
        match token {
            Token::VariableStart | Token::BlockStart => {
                in_tag = Some(0);
                keyword_next = matches!(token, Token::BlockStart);
                continue;
            }
            Token::VariableEnd | Token::BlockEnd => {
                in_tag = None;
                continue;
            }
            _ => {}
        }
        if let Some(count) = in_tag.as_mut() {
            *count += 1;
            if *count > MAX_TAG_TOKENS {
                return Err(TemplateError::ExpressionTooLong {
                    line,
                    max: MAX_TAG_TOKENS,
                });
            }
        }
        if std::mem::take(&mut keyword_next)
            && let Token::Ident(keyword) = token
        {
            match keyword {
                "if" | "for" => {
                    open.push(1);
                    depth += 1;
                }
                "elif" => {
                    if let Some(levels) = open.last_mut() {
                        *levels += 1;
                        depth += 1;
                    }
                }
                "endif" | "endfor" => depth -= open.pop().unwrap_or(0),
                _ => {}
            }
            if depth > MAX_NESTING {
                return Err(TemplateError::NestedTooDeep {
                    line,
                    max: MAX_NESTING,
                });
            }
        }
    }
    Ok(())
}

/// A piece of text to put into the source: inserted at `at`, or replacing the one-byte
/// operator there.
struct Edit {
    at: usize,
    kind: EditKind,
    /// How deep the rewritten operator sits in its expression: at one offset, outer
    /// openings come before inner ones and inner closings before outer ones.
    depth: usize,
    text: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum EditKind {
    Close,
    Open,
    Operator,
}

/// `source` with `edits` made, or `None` if minijinja's positions did not fit it.
fn apply(source: &str, mut edits: Vec<Edit>) -> Option<String> {
    edits.sort_by_key(|edit| {
        let depth = match edit.kind {
            EditKind::Close => usize::MAX - edit.depth,
            _ => edit.depth,
        };
        (edit.at, edit.kind, depth)
    });
    let extra: usize = edits.iter().map(|edit| edit.text.len()).sum();
    let mut out = String::with_capacity(source.len() + extra);
    let mut copied = 0;
    for edit in edits {
        out.push_str(source.get(copied..edit.at)?);
        out.push_str(edit.text);
        copied = edit.at + usize::from(edit.kind == EditKind::Operator);
    }
    out.push_str(source.get(copied..)?);
    Some(out)
}

struct Walk<'s> {
    source: &'s str,
    edits: Vec<Edit>,
}

fn line_of(span: minijinja::machinery::Span) -> Line {
    Line(Some(usize::from(span.start_line)))
}

fn not_allowed(what: impl Into<String>, line: Line, hint: &'static str) -> TemplateError {
    TemplateError::NotAllowed {
        what: what.into(),
        line,
        hint,
    }
}

const BLOCKS_HINT: &str =
    "message templates may use `if` and `for` blocks and `{{ … }}` expressions";
const COMPUTE_HINT: &str = "pass computed values in `variables` instead";

impl Walk<'_> {
    fn stmts(&mut self, stmts: &[Stmt<'_>], depth: usize) -> Result<(), TemplateError> {
        stmts.iter().try_for_each(|stmt| self.stmt(stmt, depth))
    }

    fn stmt(&mut self, stmt: &Stmt<'_>, depth: usize) -> Result<(), TemplateError> {
        match stmt {
            Stmt::Template(template) => self.stmts(&template.children, depth),
            Stmt::EmitRaw(_) => Ok(()),
            Stmt::EmitExpr(emit) => self.expr(&emit.expr, depth),
            Stmt::IfCond(cond) => {
                self.expr(&cond.expr, depth)?;
                self.stmts(&cond.true_body, depth)?;
                self.stmts(&cond.false_body, depth)
            }
            Stmt::ForLoop(for_loop) => {
                if for_loop.recursive {
                    return Err(not_allowed(
                        "a `recursive` loop",
                        line_of(for_loop.span()),
                        BLOCKS_HINT,
                    ));
                }
                self.expr(&for_loop.target, depth)?;
                self.expr(&for_loop.iter, depth)?;
                if let Some(filter) = &for_loop.filter_expr {
                    self.expr(filter, depth)?;
                }
                self.stmts(&for_loop.body, depth)?;
                self.stmts(&for_loop.else_body, depth)
            }
            other => {
                let span = stmt_span(other);
                Err(not_allowed(
                    format!("`{{% {} %}}`", self.keyword_at(span)),
                    line_of(span),
                    BLOCKS_HINT,
                ))
            }
        }
    }

    /// The statement's keyword (`set`, `macro`…), read from the source for the message.
    fn keyword_at(&self, span: minijinja::machinery::Span) -> &str {
        let start = usize::try_from(span.start_offset).unwrap_or(usize::MAX);
        let text = self.source.get(start..).unwrap_or_default();
        let text = text.trim_start_matches(|c: char| "{%-+~".contains(c) || c.is_whitespace());
        let end = text
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(text.len());
        &text[..end]
    }

    fn args(&mut self, args: &[CallArg<'_>], depth: usize) -> Result<(), TemplateError> {
        for arg in args {
            match arg {
                CallArg::Pos(expr) | CallArg::Kwarg(_, expr) => self.expr(expr, depth)?,
                CallArg::PosSplat(expr) | CallArg::KwargSplat(expr) => {
                    return Err(not_allowed(
                        "argument unpacking (`*args`, `**kwargs`)",
                        line_of(expr.span()),
                        COMPUTE_HINT,
                    ));
                }
            }
        }
        Ok(())
    }

    fn expr(&mut self, expr: &Expr<'_>, depth: usize) -> Result<(), TemplateError> {
        let line = line_of(expr.span());
        match expr {
            // minijinja reads `not` or `if` as a variable where nothing else fits; after
            // the rewrite something else may fit.
            Expr::Var(var) if KEYWORDS.contains(&var.id) => Err(not_allowed(
                format!("the keyword `{}` as a variable", var.id),
                line,
                "give the variable another name",
            )),
            Expr::Var(_) | Expr::Const(_) => Ok(()),
            Expr::UnaryOp(unary) => self.expr(&unary.expr, depth + 1),
            Expr::BinOp(binop) => {
                match binop.op {
                    BinOpKind::Concat => return self.rewrite_chain(expr, BinOpKind::Concat, depth),
                    BinOpKind::Add => return self.rewrite_chain(expr, BinOpKind::Add, depth),
                    BinOpKind::Mul => {
                        return Err(not_allowed(
                            "`*`",
                            line,
                            "it would repeat a text; pass computed values in `variables` instead",
                        ));
                    }
                    // minijinja compares lists and maps item by item, and searches texts:
                    // work its fuel does not see (a `==` of two lists of 10,000 items in a
                    // loop took 23 s). The operands are measured and charged.
                    BinOpKind::Eq
                    | BinOpKind::Ne
                    | BinOpKind::Lt
                    | BinOpKind::Lte
                    | BinOpKind::Gt
                    | BinOpKind::Gte
                    | BinOpKind::In => {
                        self.wrap(&binop.left, "(", OPERAND_CLOSE, depth);
                        self.wrap(&binop.right, "(", OPERAND_CLOSE, depth);
                    }
                    // Numbers only, or truth values.
                    BinOpKind::Sub
                    | BinOpKind::Div
                    | BinOpKind::FloorDiv
                    | BinOpKind::Rem
                    | BinOpKind::Pow
                    | BinOpKind::ScAnd
                    | BinOpKind::ScOr => {}
                }
                self.expr(&binop.left, depth + 1)?;
                self.expr(&binop.right, depth + 1)
            }
            Expr::Compare(compare) => {
                self.wrap(&compare.expr, "(", OPERAND_CLOSE, depth);
                for op in &compare.ops {
                    self.wrap(&op.expr, "(", OPERAND_CLOSE, depth);
                }
                self.expr(&compare.expr, depth + 1)?;
                compare
                    .ops
                    .iter()
                    .try_for_each(|op| self.expr(&op.expr, depth + 1))
            }
            Expr::IfExpr(if_expr) => {
                self.expr(&if_expr.test_expr, depth + 1)?;
                self.expr(&if_expr.true_expr, depth + 1)?;
                if let Some(false_expr) = &if_expr.false_expr {
                    self.expr(false_expr, depth + 1)?;
                }
                Ok(())
            }
            Expr::Filter(filter) => {
                if !FILTERS.contains(&filter.name) {
                    return Err(not_allowed(
                        format!("the filter `{}`", filter.name),
                        line,
                        "the filters are abs, capitalize, default, first, float, int, join, last, length, lower, replace, round, string, title, trim, truncate, upper and urlencode",
                    ));
                }
                if let Some(inner) = &filter.expr {
                    self.expr(inner, depth + 1)?;
                }
                self.args(&filter.args, depth + 1)
            }
            Expr::Test(test) => {
                if !TESTS.contains(&test.name) {
                    return Err(not_allowed(
                        format!("the test `is {}`", test.name),
                        line,
                        "the tests are defined, undefined, none, number and string",
                    ));
                }
                self.expr(&test.expr, depth + 1)?;
                self.args(&test.args, depth + 1)
            }
            Expr::GetAttr(get) => self.expr(&get.expr, depth + 1),
            Expr::GetItem(get) => {
                // `x['name']` looks a key up; only a number walks a text.
                let by_name =
                    matches!(&get.subscript_expr, Expr::Const(key) if key.value.as_str().is_some());
                if !by_name {
                    self.wrap(&get.expr, "((", INDEXABLE_CLOSE, depth);
                }
                self.expr(&get.expr, depth + 1)?;
                self.expr(&get.subscript_expr, depth + 1)
            }
            Expr::List(list) => list
                .items
                .iter()
                .try_for_each(|item| self.expr(item, depth + 1)),
            Expr::Map(map) => map
                .keys
                .iter()
                .chain(&map.values)
                .try_for_each(|item| self.expr(item, depth + 1)),
            Expr::Slice(_) => Err(not_allowed(
                "a slice (`x[a:b]`)",
                line,
                "use `truncate`, `first` or `last`",
            )),
            Expr::Call(call) => Err(not_allowed(
                match &call.expr {
                    Expr::Var(var) => format!("the function `{}()`", var.id),
                    Expr::GetAttr(get) => format!("the method `{}()`", get.name),
                    _ => "a call (`…(…)`)".to_owned(),
                },
                line,
                "message templates have filters (`x | upper`) but no functions",
            )),
            #[allow(unreachable_patterns)]
            _ => Err(not_allowed(
                format!("this {}", expr.description()),
                line,
                COMPUTE_HINT,
            )),
        }
    }

    /// Puts `open` before `operand` and `close` after it.
    fn wrap(&mut self, operand: &Expr<'_>, open: &'static str, close: &'static str, depth: usize) {
        let offset = |value: u32| usize::try_from(value).unwrap_or(usize::MAX);
        self.edits.push(Edit {
            at: true_start(operand),
            kind: EditKind::Open,
            depth,
            text: open,
        });
        self.edits.push(Edit {
            at: offset(operand.span().end_offset),
            kind: EditKind::Close,
            depth,
            text: close,
        });
    }

    /// Rewrites a chain `a ~ b ~ c` into `(a)|concat(b, c)`, and `a + b + c` into
    /// `(a)|number+(b)|number+(c)|number`. A chain becomes one call rather than one per
    /// operator, so it adds no nesting (minijinja's parser allows about 70 levels of brackets).
    fn rewrite_chain(
        &mut self,
        chain: &Expr<'_>,
        kind: BinOpKind,
        depth: usize,
    ) -> Result<(), TemplateError> {
        let operator = if matches!(kind, BinOpKind::Concat) {
            '~'
        } else {
            '+'
        };
        let operands = chain_operands(chain, kind);
        let offset = |value: u32| usize::try_from(value).unwrap_or(usize::MAX);
        let mut operators = Vec::with_capacity(operands.len());
        for pair in operands.windows(2) {
            // Ends are exact; a filter's start is its name, after the operand's first part.
            // Between one operand's end and the operator there are only spaces and `)`.
            let (gap_start, gap_end) = (
                offset(pair[0].span().end_offset),
                offset(pair[1].span().end_offset),
            );
            let at = self
                .source
                .get(gap_start..gap_end)
                .and_then(|gap| gap.find(operator))
                .map(|found| gap_start + found)
                .ok_or_else(|| {
                    not_allowed(
                        format!("this use of `{operator}`"),
                        line_of(pair[1].span()),
                        COMPUTE_HINT,
                    )
                })?;
            operators.push(at);
        }
        let edit = |at, kind, text| Edit {
            at,
            kind,
            depth,
            text,
        };
        let (first, next, close) = if operator == '~' {
            (CONCAT_FIRST, ",", ")")
        } else {
            (NUMBER_NEXT, NUMBER_NEXT, NUMBER_CLOSE)
        };
        let span = chain.span();
        self.edits
            .push(edit(offset(span.start_offset), EditKind::Open, "("));
        for (index, at) in operators.into_iter().enumerate() {
            let text = if index == 0 { first } else { next };
            self.edits.push(edit(at, EditKind::Operator, text));
        }
        self.edits
            .push(edit(offset(span.end_offset), EditKind::Close, close));
        operands
            .into_iter()
            .try_for_each(|operand| self.expr(operand, depth + 1))
    }
}

/// Where the text of `expr` starts. minijinja's spans end where the expression ends, but
/// some start elsewhere: a filter's or a test's at its name, a second `.name` or `[i]` at
/// the first, a comparison's or an `if … else`'s at the token before it. Those start where
/// their first operand does. The result may fall after opening brackets that belong to the
/// expression; an opening bracket inserted there reads the same as one inserted before them.
fn true_start(expr: &Expr<'_>) -> usize {
    let start = |expr: &Expr<'_>| usize::try_from(expr.span().start_offset).unwrap_or(usize::MAX);
    match expr {
        Expr::Filter(filter) => filter.expr.as_ref().map_or_else(|| start(expr), true_start),
        Expr::Test(test) => true_start(&test.expr),
        Expr::GetAttr(get) => true_start(&get.expr),
        Expr::GetItem(get) => true_start(&get.expr),
        Expr::Call(call) => true_start(&call.expr),
        Expr::Slice(slice) => true_start(&slice.expr),
        Expr::Compare(compare) => true_start(&compare.expr),
        Expr::IfExpr(if_expr) => true_start(&if_expr.true_expr),
        Expr::BinOp(binop) if is_comparison(binop.op) => true_start(&binop.left),
        // `a not in b` is `not (a in b)` with the comparison's span.
        Expr::UnaryOp(unary) if unary.span().start_offset == unary.expr.span().start_offset => {
            true_start(&unary.expr)
        }
        _ => start(expr),
    }
}

fn is_comparison(op: BinOpKind) -> bool {
    matches!(
        op,
        BinOpKind::Eq
            | BinOpKind::Ne
            | BinOpKind::Lt
            | BinOpKind::Lte
            | BinOpKind::Gt
            | BinOpKind::Gte
            | BinOpKind::In
    )
}

/// The operands of a left-leaning chain of `kind`, left to right. An operand the user put
/// in brackets (`(a ~ b) ~ c`) stays one operand: it starts after the chain does.
fn chain_operands<'e, 'a>(chain: &'e Expr<'a>, kind: BinOpKind) -> Vec<&'e Expr<'a>> {
    let same = |expr: &Expr<'_>| matches!(expr, Expr::BinOp(binop) if std::mem::discriminant(&binop.op) == std::mem::discriminant(&kind));
    let mut rights = Vec::new();
    let mut current = chain;
    while let Expr::BinOp(binop) = current {
        if !same(current) {
            break;
        }
        rights.push(&binop.right);
        let left = &binop.left;
        if same(left) && left.span().start_offset == current.span().start_offset {
            current = left;
        } else {
            rights.push(left);
            break;
        }
    }
    rights.reverse();
    rights
}

fn stmt_span(stmt: &Stmt<'_>) -> minijinja::machinery::Span {
    match stmt {
        Stmt::Template(s) => s.span(),
        Stmt::EmitExpr(s) => s.span(),
        Stmt::EmitRaw(s) => s.span(),
        Stmt::ForLoop(s) => s.span(),
        Stmt::IfCond(s) => s.span(),
        Stmt::WithBlock(s) => s.span(),
        Stmt::Set(s) => s.span(),
        Stmt::SetBlock(s) => s.span(),
        Stmt::AutoEscape(s) => s.span(),
        Stmt::FilterBlock(s) => s.span(),
        Stmt::Block(s) => s.span(),
        Stmt::Import(s) => s.span(),
        Stmt::FromImport(s) => s.span(),
        Stmt::Extends(s) => s.span(),
        Stmt::Include(s) => s.span(),
        Stmt::Macro(s) => s.span(),
        Stmt::CallBlock(s) => s.span(),
        Stmt::Do(s) => s.span(),
        #[allow(unreachable_patterns)]
        _ => minijinja::machinery::Span::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(source: &str) -> String {
        check_and_rewrite(source).unwrap()
    }

    #[test]
    fn concatenations_become_checked_filters_and_keep_their_grouping() {
        assert_eq!(rewritten("{{ a ~ b }}"), "{{ (a )|__relais_concat( b) }}");
        assert_eq!(
            rewritten("{{ a ~ b ~ c }}"),
            "{{ (a )|__relais_concat( b , c) }}"
        );
        assert_eq!(
            rewritten("{{ (a ~ b)|upper ~ c }}"),
            "{{ (((a )|__relais_concat( b))|upper )|__relais_concat( c) }}"
        );
        assert_eq!(
            rewritten("{{ (a ~ b) ~ c }}"),
            "{{ (((a )|__relais_concat( b)) )|__relais_concat( c) }}"
        );
        assert_eq!(
            rewritten("{{ a ~ (b ~ c) }}"),
            "{{ (a )|__relais_concat( ((b )|__relais_concat( c))) }}"
        );
    }

    #[test]
    fn additions_check_both_operands_are_numbers() {
        assert_eq!(
            rewritten("{{ n + 1 }}"),
            "{{ (n )|__relais_number+( 1)|__relais_number }}"
        );
        assert_eq!(
            rewritten("{{ n + 1 + m }}"),
            "{{ (n )|__relais_number+( 1 )|__relais_number+( m)|__relais_number }}"
        );
        // `~` binds tighter than `+` in minijinja.
        assert_eq!(
            rewritten("{{ a + b ~ c }}"),
            "{{ (a )|__relais_number+( (b )|__relais_concat( c))|__relais_number }}"
        );
    }

    #[test]
    fn comparison_operands_and_indexed_values_are_measured() {
        assert_eq!(
            rewritten("{{ a == b }}"),
            "{{ (a)|__relais_operand == (b)|__relais_operand }}"
        );
        assert_eq!(
            rewritten("{% if x.y|upper not in ['A', b] %}{% endif %}"),
            "{% if (x.y|upper)|__relais_operand not in (['A', b])|__relais_operand %}{% endif %}"
        );
        assert_eq!(
            rewritten("{{ 1 < n <= 3 }}"),
            "{{ (1)|__relais_operand < (n)|__relais_operand <= (3)|__relais_operand }}"
        );
        assert_eq!(
            rewritten("{{ s[0] }}{{ s.a.0 }}{{ m['k'] }}"),
            "{{ ((s)|__relais_indexable)[0] }}{{ ((s.a)|__relais_indexable).0 }}{{ m['k'] }}"
        );
    }

    #[test]
    fn line_breaks_are_kept() {
        let source = "{{ a\n~\nb }}\n{{ c + \n d }}";
        assert_eq!(
            rewritten(source).matches('\n').count(),
            source.matches('\n').count()
        );
    }
}
