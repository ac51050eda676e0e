//! The tokens inside one `{{ }}` action.

use super::*;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Field(String, bool),
    Dot,
    Var(String),
    Lit(Value),
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
}

/// One action's tokens, with their offsets.
pub(super) fn lex(src: &str, base: usize) -> Res<Vec<(Tok, usize)>> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |at: usize, m: String| Problem {
        offset: base + at,
        message: m,
    };
    while i < b.len() {
        let c = b[i] as char;
        let start = i;
        let spaced = i == 0 || (b[i - 1] as char).is_whitespace();
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push((Tok::LParen, start));
                i += 1
            }
            ')' => {
                out.push((Tok::RParen, start));
                i += 1
            }
            '|' => {
                out.push((Tok::Pipe, start));
                i += 1
            }
            ',' => {
                out.push((Tok::Comma, start));
                i += 1
            }
            ':' if b.get(i + 1) == Some(&b'=') => {
                out.push((Tok::Declare, start));
                i += 2
            }
            '=' => {
                out.push((Tok::Assign, start));
                i += 1
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&ch) = b.get(i) else {
                        return Err(err(start, "unterminated quoted string".into()));
                    };
                    match ch {
                        b'"' => break,
                        b'\\' => {
                            let esc = *b
                                .get(i + 1)
                                .ok_or_else(|| err(start, "unterminated quoted string".into()))?;
                            s.push(match esc {
                                b'n' => '\n',
                                b't' => '\t',
                                b'r' => '\r',
                                b'"' => '"',
                                b'\\' => '\\',
                                other => {
                                    return Err(err(
                                        i,
                                        format!("unknown escape sequence \\{}", other as char),
                                    ));
                                }
                            });
                            i += 2;
                        }
                        _ => {
                            let rest = &src[i..];
                            let ch = rest.chars().next().unwrap_or_default();
                            s.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                i += 1;
                out.push((Tok::Lit(Value::Str(s)), start));
            }
            '`' => {
                let end = src[i + 1..]
                    .find('`')
                    .ok_or_else(|| err(start, "unterminated raw quoted string".into()))?;
                out.push((Tok::Lit(Value::Str(src[i + 1..i + 1 + end].into())), start));
                i += end + 2;
            }
            '$' => {
                let n = ident_len(&src[i + 1..]);
                out.push((Tok::Var(src[i..i + 1 + n].into()), start));
                i += 1 + n;
            }
            '.' => {
                let n = ident_len(&src[i + 1..]);
                if n == 0 {
                    out.push((Tok::Dot, start));
                } else {
                    out.push((Tok::Field(src[i + 1..i + 1 + n].into(), spaced), start));
                }
                i += 1 + n;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+') && b.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                let n = 1 + src[i + 1..]
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '.' || ch == '_'))
                    .unwrap_or(src.len() - i - 1);
                let text = src[i..i + n].replace('_', "");
                let v = if let Ok(v) = text.parse::<i64>() {
                    Value::Int(v)
                } else if let Some(h) = text.strip_prefix("0x") {
                    Value::Int(
                        i64::from_str_radix(h, 16)
                            .map_err(|_| err(start, format!("bad number syntax: {text:?}")))?,
                    )
                } else {
                    Value::Float(
                        text.parse::<f64>()
                            .map_err(|_| err(start, format!("bad number syntax: {text:?}")))?,
                    )
                };
                out.push((Tok::Lit(v), start));
                i += n;
            }
            c if c.is_alphabetic() || c == '_' => {
                let n = ident_len(&src[i..]);
                let word = &src[i..i + n];
                out.push((
                    match word {
                        "true" => Tok::Lit(Value::Bool(true)),
                        "false" => Tok::Lit(Value::Bool(false)),
                        "nil" => Tok::Lit(Value::Nil),
                        _ => Tok::Ident(word.into()),
                    },
                    start,
                ));
                i += n;
            }
            other => return Err(err(start, format!("unexpected {other:?} in command"))),
        }
    }
    Ok(out)
}

pub(super) fn ident_len(s: &str) -> usize {
    s.find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len())
}

pub(super) fn describe(t: &Tok) -> &'static str {
    match t {
        Tok::RParen => "right paren",
        Tok::Declare => "\":=\"",
        Tok::Assign => "\"=\"",
        Tok::Comma => "\",\"",
        Tok::Pipe => "\"|\"",
        _ => "token",
    }
}
