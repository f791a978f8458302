//! From a filter's text to its tree: a tokenizer, then a recursive-descent parser whose
//! precedence is `or` < `and` < `not` < a condition. Every error names the character where
//! it was found (1-based), so that an editor can point at it.

use super::{
    Behaviour, Comparison, Field, Filter, MAX_CONDITIONS, MAX_DEPTH, MAX_FILTER_BYTES, Value,
    field_of,
};
use crate::retry::parse_duration;
use jiff::SignedDuration;

/// A filter that cannot be read, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {position}: {message}")]
pub struct ParseError {
    /// 1-based position of the character where the problem is (one past the end for a
    /// filter that stops too early).
    pub position: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(f64),
    /// Digits with a unit (`30d`, `12h`), only meaningful after `within`.
    Duration(String),
    Op(Comparison),
    Open,
    Close,
    Comma,
}

#[derive(Debug, Clone)]
struct Spanned {
    token: Token,
    /// 1-based character position.
    at: usize,
}

pub(super) fn parse(text: &str) -> Result<Filter, ParseError> {
    if text.len() > MAX_FILTER_BYTES {
        return Err(ParseError {
            position: 1,
            message: format!(
                "a filter holds at most {MAX_FILTER_BYTES} bytes, this one {}",
                text.len()
            ),
        });
    }
    let tokens = tokenize(text)?;
    let end = text.chars().count() + 1;
    if tokens.is_empty() {
        return Err(ParseError {
            position: 1,
            message: "the filter is empty".into(),
        });
    }
    let mut parser = Parser {
        tokens,
        next: 0,
        end,
        conditions: 0,
    };
    let filter = parser.or(0)?;
    if let Some(extra) = parser.peek() {
        return Err(ParseError {
            position: extra.at,
            message: format!(
                "expected `and`, `or` or the end, found {}",
                describe(&extra.token)
            ),
        });
    }
    Ok(filter)
}

fn tokenize(text: &str) -> Result<Vec<Spanned>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let single = |token| Spanned { token, at };
        match c {
            '(' => {
                tokens.push(single(Token::Open));
                i += 1;
            }
            ')' => {
                tokens.push(single(Token::Close));
                i += 1;
            }
            ',' => {
                tokens.push(single(Token::Comma));
                i += 1;
            }
            '=' => {
                // `==` reads as `=` too.
                i += if chars.get(i + 1) == Some(&'=') { 2 } else { 1 };
                tokens.push(single(Token::Op(Comparison::Equal)));
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(single(Token::Op(Comparison::NotEqual)));
                i += 2;
            }
            '<' => {
                let (op, width) = match chars.get(i + 1) {
                    Some('=') => (Comparison::LessOrEqual, 2),
                    Some('>') => (Comparison::NotEqual, 2),
                    _ => (Comparison::Less, 1),
                };
                tokens.push(single(Token::Op(op)));
                i += width;
            }
            '>' => {
                let (op, width) = match chars.get(i + 1) {
                    Some('=') => (Comparison::GreaterOrEqual, 2),
                    _ => (Comparison::Greater, 1),
                };
                tokens.push(single(Token::Op(op)));
                i += width;
            }
            '\'' | '"' => {
                let quote = c;
                let mut value = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(ParseError {
                                position: at,
                                message: "this string is never closed".into(),
                            });
                        }
                        // A quote is written twice inside a string of that quote (SQL's
                        // way), or escaped with a backslash.
                        Some(&q) if q == quote && chars.get(j + 1) == Some(&quote) => {
                            value.push(quote);
                            j += 2;
                        }
                        Some(&q) if q == quote => {
                            j += 1;
                            break;
                        }
                        Some('\\') if chars.get(j + 1).is_some() => {
                            value.push(chars[j + 1]);
                            j += 2;
                        }
                        Some(&other) => {
                            value.push(other);
                            j += 1;
                        }
                    }
                }
                tokens.push(single(Token::Text(value)));
                i = j;
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                    j += 1;
                }
                let unit_start = j;
                while j < chars.len() && chars[j].is_ascii_alphabetic() {
                    j += 1;
                }
                let number: String = chars[i..unit_start].iter().collect();
                if unit_start < j {
                    let whole: String = chars[i..j].iter().collect();
                    tokens.push(single(Token::Duration(whole)));
                } else {
                    let value =
                        number
                            .parse::<f64>()
                            .ok()
                            .filter(|v| v.is_finite())
                            .ok_or(ParseError {
                                position: at,
                                message: format!("`{number}` is not a number"),
                            })?;
                    tokens.push(single(Token::Number(value)));
                }
                i = j;
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].is_alphanumeric() || matches!(chars[j], '_' | '.' | '-'))
                {
                    j += 1;
                }
                tokens.push(single(Token::Word(chars[i..j].iter().collect())));
                i = j;
            }
            other => {
                return Err(ParseError {
                    position: at,
                    message: format!("unexpected character `{other}`"),
                });
            }
        }
    }
    Ok(tokens)
}

fn describe(token: &Token) -> String {
    match token {
        Token::Word(w) => format!("`{w}`"),
        Token::Text(t) => format!("the string '{t}'"),
        Token::Number(n) => format!("the number {n}"),
        Token::Duration(d) => format!("`{d}`"),
        Token::Op(op) => format!("`{}`", op.sql()),
        Token::Open => "`(`".into(),
        Token::Close => "`)`".into(),
        Token::Comma => "`,`".into(),
    }
}

struct Parser {
    tokens: Vec<Spanned>,
    next: usize,
    end: usize,
    conditions: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Spanned> {
        self.tokens.get(self.next)
    }

    fn take(&mut self) -> Option<Spanned> {
        let token = self.tokens.get(self.next).cloned();
        self.next += 1;
        token
    }

    fn keyword_next(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Spanned { token: Token::Word(w), .. }) if w.eq_ignore_ascii_case(keyword))
    }

    fn error_here(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            position: self.peek().map_or(self.end, |t| t.at),
            message: message.into(),
        }
    }

    fn deeper(&self, depth: usize) -> Result<usize, ParseError> {
        if depth >= MAX_DEPTH {
            return Err(self.error_here(format!("the filter nests deeper than {MAX_DEPTH} levels")));
        }
        Ok(depth + 1)
    }

    fn or(&mut self, depth: usize) -> Result<Filter, ParseError> {
        let mut left = self.and(depth)?;
        while self.keyword_next("or") {
            self.next += 1;
            let right = self.and(depth)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Filter, ParseError> {
        let mut left = self.not(depth)?;
        while self.keyword_next("and") {
            self.next += 1;
            let right = self.not(depth)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `not` and parentheses are what nest: each counts one level.
    fn not(&mut self, depth: usize) -> Result<Filter, ParseError> {
        if self.keyword_next("not") {
            let depth = self.deeper(depth)?;
            self.next += 1;
            return Ok(Filter::Not(Box::new(self.not(depth)?)));
        }
        if matches!(
            self.peek(),
            Some(Spanned {
                token: Token::Open,
                ..
            })
        ) {
            let depth = self.deeper(depth)?;
            self.next += 1;
            let inner = self.or(depth)?;
            return match self.take() {
                Some(Spanned {
                    token: Token::Close,
                    ..
                }) => Ok(inner),
                Some(other) => Err(ParseError {
                    position: other.at,
                    message: format!("expected `)`, found {}", describe(&other.token)),
                }),
                None => Err(ParseError {
                    position: self.end,
                    message: "a `(` is never closed".into(),
                }),
            };
        }
        self.condition()
    }

    fn condition(&mut self) -> Result<Filter, ParseError> {
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(self.error_here(format!(
                "a filter holds at most {MAX_CONDITIONS} conditions"
            )));
        }
        let Some(Spanned { token, at }) = self.take() else {
            return Err(ParseError {
                position: self.end,
                message: "the filter stops where a condition was expected".into(),
            });
        };
        let Token::Word(name) = token else {
            return Err(ParseError {
                position: at,
                message: format!(
                    "expected a field such as `attributes.city`, found {}",
                    describe(&token)
                ),
            });
        };
        if let Some(behaviour) = Behaviour::parse(&name) {
            let behaviour = behaviour.map_err(|message| ParseError {
                position: at,
                message,
            })?;
            return self.within(behaviour);
        }
        let field = field_of(&name).map_err(|message| ParseError {
            position: at,
            message,
        })?;
        let Some(Spanned { token, at: op_at }) = self.take() else {
            return Err(ParseError {
                position: self.end,
                message: format!(
                    "`{name}` needs a comparison: `=`, `!=`, `<`, `>`, `in`, `contains` or `exists`"
                ),
            });
        };
        match token {
            Token::Op(op) => {
                let value = self.value(&field)?;
                if !matches!(op, Comparison::Equal | Comparison::NotEqual)
                    && matches!(value, Value::Bool(_))
                {
                    return Err(ParseError {
                        position: op_at,
                        message: "true and false compare with `=` and `!=` only".into(),
                    });
                }
                Ok(Filter::Compare { field, op, value })
            }
            Token::Word(w) if w.eq_ignore_ascii_case("exists") => Ok(Filter::Exists(field)),
            Token::Word(w) if w.eq_ignore_ascii_case("contains") => {
                let value = self.value(&field)?;
                if matches!(value, Value::Bool(_)) {
                    return Err(ParseError {
                        position: op_at,
                        message: "`contains` takes a string or a number".into(),
                    });
                }
                Ok(Filter::Contains { field, value })
            }
            Token::Word(w) if w.eq_ignore_ascii_case("in") => self.list(field),
            other => Err(ParseError {
                position: op_at,
                message: format!(
                    "expected `=`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `contains` or `exists` after `{name}`, found {}",
                    describe(&other)
                ),
            }),
        }
    }

    fn within(&mut self, behaviour: Behaviour) -> Result<Filter, ParseError> {
        if !self.keyword_next("within") {
            return Err(ParseError {
                position: self.peek().map_or(self.end, |t| t.at),
                message: format!(
                    "`{}` is a behaviour: ask it over a period, `{} within 30d`",
                    behaviour.name(),
                    behaviour.name()
                ),
            });
        }
        self.next += 1;
        match self.take() {
            Some(Spanned {
                token: Token::Duration(raw),
                at: d_at,
            }) => {
                let period = parse_duration("within", &raw).map_err(|_| ParseError {
                    position: d_at,
                    message: format!("`{raw}` is not a period: write `12h`, `7d` or `4w`"),
                })?;
                if period <= SignedDuration::ZERO {
                    return Err(ParseError {
                        position: d_at,
                        message: "the period must be longer than zero".into(),
                    });
                }
                Ok(Filter::Within { behaviour, period })
            }
            Some(Spanned { token, at }) => Err(ParseError {
                position: at,
                message: format!(
                    "expected a period such as `30d` after `within`, found {}",
                    describe(&token)
                ),
            }),
            None => Err(ParseError {
                position: self.end,
                message: format!("`{} within` needs a period such as `30d`", behaviour.name()),
            }),
        }
    }

    fn value(&mut self, field: &Field) -> Result<Value, ParseError> {
        let Some(Spanned { token, at }) = self.take() else {
            return Err(ParseError {
                position: self.end,
                message: "the filter stops where a value was expected".into(),
            });
        };
        let value = match token {
            Token::Text(t) => Value::Text(t),
            Token::Number(n) => Value::Number(n),
            Token::Word(w) if w.eq_ignore_ascii_case("true") => Value::Bool(true),
            Token::Word(w) if w.eq_ignore_ascii_case("false") => Value::Bool(false),
            Token::Word(w) => {
                return Err(ParseError {
                    position: at,
                    message: format!("`{w}` is not a value: quote text, 'like this'"),
                });
            }
            other => {
                return Err(ParseError {
                    position: at,
                    message: format!("expected a value, found {}", describe(&other)),
                });
            }
        };
        if field.is_text_only() && !matches!(value, Value::Text(_)) {
            return Err(ParseError {
                position: at,
                message: "this field holds text: compare it with a quoted string".into(),
            });
        }
        Ok(value)
    }

    fn list(&mut self, field: Field) -> Result<Filter, ParseError> {
        match self.take() {
            Some(Spanned {
                token: Token::Open, ..
            }) => {}
            Some(Spanned { token, at }) => {
                return Err(ParseError {
                    position: at,
                    message: format!(
                        "`in` takes a list: `in ('a', 'b')`, found {}",
                        describe(&token)
                    ),
                });
            }
            None => {
                return Err(ParseError {
                    position: self.end,
                    message: "`in` takes a list: `in ('a', 'b')`".into(),
                });
            }
        }
        let mut values = Vec::new();
        loop {
            let value = self.value(&field)?;
            values.push(value);
            if values.len() > 1000 {
                return Err(self.error_here("an `in` list holds at most 1000 values"));
            }
            match self.take() {
                Some(Spanned {
                    token: Token::Comma,
                    ..
                }) => continue,
                Some(Spanned {
                    token: Token::Close,
                    ..
                }) => break,
                Some(Spanned { token, at }) => {
                    return Err(ParseError {
                        position: at,
                        message: format!(
                            "expected `,` or `)` in the list, found {}",
                            describe(&token)
                        ),
                    });
                }
                None => {
                    return Err(ParseError {
                        position: self.end,
                        message: "the list is never closed with `)`".into(),
                    });
                }
            }
        }
        Ok(Filter::In { field, values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::ChannelKind;
    use crate::consent::Purpose;

    fn attr(name: &str) -> Field {
        Field::Attribute(name.split('.').map(str::to_owned).collect())
    }

    #[test]
    fn the_design_example_reads_as_an_and_of_two_comparisons() {
        let filter =
            Filter::parse("attributes.city = 'Lyon' and consent.sms.marketing = 'opted_in'")
                .unwrap();
        assert_eq!(
            filter,
            Filter::And(
                Box::new(Filter::Compare {
                    field: attr("city"),
                    op: Comparison::Equal,
                    value: Value::Text("Lyon".into()),
                }),
                Box::new(Filter::Compare {
                    field: Field::Consent {
                        channel: ChannelKind::Sms,
                        purpose: Purpose::Marketing,
                    },
                    op: Comparison::Equal,
                    value: Value::Text("opted_in".into()),
                }),
            )
        );
    }

    #[test]
    fn and_binds_tighter_than_or_and_not_tighter_than_and() {
        let filter =
            Filter::parse("locale = 'fr' or not timezone exists and attributes.vip = true")
                .unwrap();
        let Filter::Or(left, right) = filter else {
            panic!("an or at the top")
        };
        assert!(matches!(
            *left,
            Filter::Compare {
                field: Field::Locale,
                ..
            }
        ));
        let Filter::And(not, vip) = *right else {
            panic!("an and on the right")
        };
        assert_eq!(*not, Filter::Not(Box::new(Filter::Exists(Field::Timezone))));
        assert_eq!(
            *vip,
            Filter::Compare {
                field: attr("vip"),
                op: Comparison::Equal,
                value: Value::Bool(true)
            }
        );
    }

    #[test]
    fn lists_contains_exists_numbers_and_behaviours_parse() {
        assert_eq!(
            Filter::parse("locale in ('fr', \"en\")").unwrap(),
            Filter::In {
                field: Field::Locale,
                values: vec![Value::Text("fr".into()), Value::Text("en".into())]
            }
        );
        assert_eq!(
            Filter::parse("attributes.tags contains 'vip'").unwrap(),
            Filter::Contains {
                field: attr("tags"),
                value: Value::Text("vip".into())
            }
        );
        assert_eq!(
            Filter::parse("attributes.age >= -1.5").unwrap(),
            Filter::Compare {
                field: attr("age"),
                op: Comparison::GreaterOrEqual,
                value: Value::Number(-1.5)
            }
        );
        assert_eq!(
            Filter::parse("identity.whatsapp exists").unwrap(),
            Filter::Exists(Field::Identity(ChannelKind::Whatsapp))
        );
        assert_eq!(
            Filter::parse("not read within 30d").unwrap(),
            Filter::Not(Box::new(Filter::Within {
                behaviour: Behaviour::Read,
                period: SignedDuration::from_hours(30 * 24)
            }))
        );
        assert_eq!(
            Filter::parse("clicked within 7d and event.purchase within 30d").unwrap(),
            Filter::And(
                Box::new(Filter::Within {
                    behaviour: Behaviour::Clicked,
                    period: SignedDuration::from_hours(7 * 24)
                }),
                Box::new(Filter::Within {
                    behaviour: Behaviour::Event("purchase".into()),
                    period: SignedDuration::from_hours(30 * 24)
                })
            )
        );
        let e = Filter::parse("event.purchase = 1").unwrap_err();
        assert!(e.message.contains("`event.purchase within 30d`"), "{e}");
        let e = Filter::parse("locale = 'fr' and event. within 1d").unwrap_err();
        assert_eq!(e.position, 19, "{e}");
        assert!(e.message.contains("needs an event's name"), "{e}");
        assert_eq!(
            Filter::parse("attributes.address.city = 'it''s'").unwrap(),
            Filter::Compare {
                field: attr("address.city"),
                op: Comparison::Equal,
                value: Value::Text("it's".into())
            }
        );
    }

    #[test]
    fn errors_name_the_character_where_the_filter_goes_wrong() {
        let at = |text: &str| Filter::parse(text).unwrap_err();
        let e = at("attributes.city = 'Lyon' and");
        assert_eq!(e.position, 29, "{e}");
        let e = at("attributes.city = 'Lyon");
        assert_eq!(e.position, 19);
        assert!(e.message.contains("never closed"));
        let e = at("attributes.city ~ 'x'");
        assert_eq!(e.position, 17);
        let e = at("city = 'Lyon'");
        assert_eq!(e.position, 1);
        assert!(e.message.contains("unknown field `city`"), "{e}");
        let e = at("identity.pigeon exists");
        assert!(e.message.contains("pigeon"));
        let e = at("(locale = 'fr'");
        assert!(e.message.contains("never closed"));
        let e = at("read = 'x'");
        assert!(e.message.contains("within 30d"), "{e}");
        let e = at("timezone = 3");
        assert_eq!(e.position, 12);
        let e = at("locale = 'fr' 'en'");
        assert_eq!(e.position, 15);
        assert_eq!(at("").message, "the filter is empty");
        assert!(at("attributes.x > true").message.contains("`=` and `!=`"));
    }

    #[test]
    fn a_hostile_filter_is_refused_by_its_size_depth_or_number_of_conditions() {
        let deep = format!("{}locale = 'fr'{}", "(".repeat(40), ")".repeat(40));
        assert!(
            Filter::parse(&deep)
                .unwrap_err()
                .message
                .contains("nests deeper")
        );
        let nots = format!("{}locale = 'fr'", "not ".repeat(40));
        assert!(
            Filter::parse(&nots)
                .unwrap_err()
                .message
                .contains("nests deeper")
        );
        let many = vec!["locale = 'fr'"; MAX_CONDITIONS + 1].join(" or ");
        assert!(
            Filter::parse(&many)
                .unwrap_err()
                .message
                .contains("at most")
        );
        let long = format!("locale = '{}'", "x".repeat(MAX_FILTER_BYTES));
        assert!(Filter::parse(&long).unwrap_err().message.contains("bytes"));
    }
}
