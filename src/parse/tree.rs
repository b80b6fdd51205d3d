//! pest's parse tree to the AST. The grammar's shape is assumed here and
//! only here; a pair that is not where the grammar puts it is an internal
//! error, reported as a diagnostic that asks for a bug report, never a panic.

use pest::iterators::{Pair, Pairs};

use super::{Rule, strings};
use crate::ast::*;
use crate::diagnostic::{Code, Diagnostic};
use crate::source::Span;

/// Builds AST items from the pairs of a `file`, whose text
/// starts at byte `offset` of the file.
pub struct Builder<'d> {
    pub offset: usize,
    pub diagnostics: &'d mut Vec<Diagnostic>,
}

type Built<T> = Result<T, Diagnostic>;

fn internal(span: Span, what: &str) -> Diagnostic {
    Diagnostic::new(
        Code::Syntax,
        span,
        format!("internal error: unexpected {what}"),
    )
    .help("this is a bug in plan-runner; please report it with the plan that caused it")
}

/// The children that carry meaning: comments and punctuation dropped.
fn significant<'i>(pair: Pair<'i, Rule>) -> impl Iterator<Item = Pair<'i, Rule>> {
    pair.into_inner().filter(|p| {
        !matches!(
            p.as_rule(),
            Rule::COMMENT
                | Rule::lbrace
                | Rule::rbrace
                | Rule::lbracket
                | Rule::rbracket
                | Rule::lparen
                | Rule::rparen
                | Rule::equals
                | Rule::comma
                | Rule::EOI
        )
    })
}

impl Builder<'_> {
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        Span::from(pair.as_span()).shifted(self.offset)
    }

    /// Every comment under the pairs, in order.
    fn comments(&self, pairs: Pairs<'_, Rule>, comments: &mut Vec<Comment>) {
        for pair in pairs.flatten() {
            if pair.as_rule() == Rule::COMMENT {
                comments.push(Comment {
                    text: pair.as_str().trim_end().to_string(),
                    span: self.span(&pair),
                });
            }
        }
    }

    /// The steps and comments under a `failure_step` pair.
    pub fn steps(
        &mut self,
        pairs: Pairs<'_, Rule>,
        steps: &mut Vec<Step>,
        comments: &mut Vec<Comment>,
    ) {
        self.comments(pairs.clone(), comments);
        for top in pairs {
            for pair in significant(top) {
                match self.step(pair) {
                    Ok(step) => steps.push(step),
                    Err(d) => self.diagnostics.push(d),
                }
            }
        }
    }

    /// The items and comments under a `file` (or `leading_items`) pair.
    pub fn items(&mut self, pairs: Pairs<'_, Rule>, file: &mut File) {
        self.comments(pairs.clone(), &mut file.comments);
        for top in pairs {
            for pair in significant(top) {
                match self.item(pair) {
                    Ok(item) => file.items.push(item),
                    Err(d) => self.diagnostics.push(d),
                }
            }
        }
    }

    fn item(&mut self, pair: Pair<'_, Rule>) -> Built<Item> {
        Ok(match pair.as_rule() {
            Rule::plan_block => Item::Plan(self.plan_block(pair)?),
            Rule::var_decl => Item::Var(self.var_decl(pair)?),
            Rule::step => Item::Step(self.step(pair)?),
            Rule::on_failure => Item::OnFailure(self.on_failure(pair)?),
            _ => return Err(internal(self.span(&pair), "top-level item")),
        })
    }

    fn body(&self, pair: &Pair<'_, Rule>) -> Span {
        let inner = pair.clone().into_inner();
        let open = inner.clone().find(|p| p.as_rule() == Rule::lbrace);
        let close = inner.filter(|p| p.as_rule() == Rule::rbrace).last();
        match (open, close) {
            (Some(o), Some(c)) => self.span(&o).to(self.span(&c)),
            _ => self.span(pair),
        }
    }

    fn plan_block(&mut self, pair: Pair<'_, Rule>) -> Built<PlanBlock> {
        let span = self.span(&pair);
        let body = self.body(&pair);
        let mut inner = significant(pair);
        let keyword = inner.next().ok_or_else(|| internal(span, "plan block"))?;
        let name = inner.next().ok_or_else(|| internal(span, "plan block"))?;
        Ok(PlanBlock {
            keyword: self.span(&keyword),
            name: self.string(name)?,
            attrs: inner.map(|a| self.attr(a)).collect::<Built<_>>()?,
            body,
            span,
        })
    }

    fn var_decl(&mut self, pair: Pair<'_, Rule>) -> Built<VarDecl> {
        let span = self.span(&pair);
        let mut inner = significant(pair).skip(1);
        let name = inner.next().ok_or_else(|| internal(span, "var"))?;
        let expr = inner.next().ok_or_else(|| internal(span, "var"))?;
        Ok(VarDecl {
            name: self.ident(&name),
            expr: self.expr(expr)?,
            span,
        })
    }

    fn on_failure(&mut self, pair: Pair<'_, Rule>) -> Built<OnFailure> {
        let span = self.span(&pair);
        let body = self.body(&pair);
        let mut inner = significant(pair);
        let keyword = inner.next().ok_or_else(|| internal(span, "on_failure"))?;
        Ok(OnFailure {
            keyword: self.span(&keyword),
            steps: inner.map(|s| self.step(s)).collect::<Built<_>>()?,
            body,
            span,
        })
    }

    fn step(&mut self, pair: Pair<'_, Rule>) -> Built<Step> {
        let span = self.span(&pair);
        let body = self.body(&pair);
        let mut inner = significant(pair);
        let kind = inner.next().ok_or_else(|| internal(span, "step"))?;
        let name = inner.next().ok_or_else(|| internal(span, "step"))?;
        // `plan p {` reads as a step of kind `plan`; saying so would send
        // the partner looking for a step kind.
        if kind.as_str() == "plan" {
            return Err(Diagnostic::new(
                Code::Syntax,
                self.span(&name),
                format!(
                    "expected the plan's name as a string, found `{}`",
                    name.as_str()
                ),
            )
            .label("not quoted")
            .help(format!("write plan \"{}\" {{ ... }}", name.as_str())));
        }
        Ok(Step {
            kind: self.ident(&kind),
            name: self.ident(&name),
            attrs: inner.map(|a| self.attr(a)).collect::<Built<_>>()?,
            body,
            span,
        })
    }

    fn attr(&mut self, pair: Pair<'_, Rule>) -> Built<Attr> {
        let span = self.span(&pair);
        let mut inner = significant(pair);
        let key = inner.next().ok_or_else(|| internal(span, "attribute"))?;
        let value = inner.next().ok_or_else(|| internal(span, "attribute"))?;
        Ok(Attr {
            key: self.ident(&key),
            value: self.value(value)?,
            span,
        })
    }

    fn expr(&mut self, pair: Pair<'_, Rule>) -> Built<Expr> {
        let span = self.span(&pair);
        Ok(match pair.as_rule() {
            Rule::string => Expr::Str(self.string(pair)?),
            Rule::number => Expr::Number(self.number(&pair)),
            Rule::env_call => {
                let mut args = significant(pair).skip(1);
                let name = args.next().ok_or_else(|| internal(span, "env()"))?;
                Expr::Env {
                    name: self.string(name)?,
                    default: args.next().map(|d| self.string(d)).transpose()?,
                    span,
                }
            }
            Rule::secret_call => {
                let name = significant(pair)
                    .nth(1)
                    .ok_or_else(|| internal(span, "secret()"))?;
                Expr::Secret {
                    name: self.string(name)?,
                    span,
                }
            }
            Rule::target_ref => {
                let field = significant(pair)
                    .nth(1)
                    .ok_or_else(|| internal(span, "target"))?;
                Expr::Target {
                    field: self.ident(&field),
                    span,
                }
            }
            _ => return Err(internal(span, "expression")),
        })
    }

    fn value(&mut self, pair: Pair<'_, Rule>) -> Built<Value> {
        let span = self.span(&pair);
        Ok(match pair.as_rule() {
            Rule::string => Value::Str(self.string(pair)?),
            Rule::number => Value::Number(self.number(&pair)),
            Rule::boolean => Value::Bool(pair.as_str() == "true", span),
            Rule::word => Value::Name(self.ident(&pair)),
            Rule::list => Value::List(List {
                items: significant(pair)
                    .map(|v| self.value(v))
                    .collect::<Built<_>>()?,
                span,
            }),
            Rule::map => Value::Map(Map {
                entries: significant(pair)
                    .map(|e| self.map_entry(e))
                    .collect::<Built<_>>()?,
                span,
            }),
            _ => return Err(internal(span, "value")),
        })
    }

    fn map_entry(&mut self, pair: Pair<'_, Rule>) -> Built<MapEntry> {
        let span = self.span(&pair);
        let mut inner = significant(pair);
        let key = inner.next().ok_or_else(|| internal(span, "map entry"))?;
        let value = inner.next().ok_or_else(|| internal(span, "map entry"))?;
        let quoted = key.as_rule() == Rule::string;
        let key = if quoted {
            let key_span = self.span(&key);
            let text = self.string(key)?.literal();
            Ident {
                name: text,
                span: key_span,
            }
        } else {
            self.ident(&key)
        };
        Ok(MapEntry {
            key,
            quoted,
            value: self.value(value)?,
            span,
        })
    }

    fn ident(&self, pair: &Pair<'_, Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(pair),
        }
    }

    fn number(&self, pair: &Pair<'_, Rule>) -> Number {
        Number {
            text: pair.as_str().to_string(),
            span: self.span(pair),
        }
    }

    fn string(&mut self, pair: Pair<'_, Rule>) -> Built<Str> {
        let span = self.span(&pair);
        let raw = pair.as_str().to_string();
        let body = pair
            .into_inner()
            .find(|p| p.as_rule() == Rule::string_body)
            .ok_or_else(|| internal(span, "string"))?;
        let body_offset = self.span(&body).start;
        Ok(Str {
            parts: strings::decode(body.as_str(), body_offset, self.diagnostics),
            raw,
            span,
        })
    }
}
