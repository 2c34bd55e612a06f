//! The template language of db files: command text with `{variable}`s,
//! filled per node from [`Vars`].

use std::collections::HashMap;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(String),
}

/// A command template: text with `{variable}`s. `{{` and `}}` stand for
/// literal braces; a `{` not followed by a name and `}` (a shell group
/// `{ a; b; }`, an awk program `{print $1}`) is literal text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The field it came from (`start`, `vars.peer_url`, `--client`).
    pub field: String,
    /// The text as written (after TOML unescaping).
    pub text: String,
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `text`; `field` names it in errors.
    pub fn parse(field: &str, text: &str) -> Template {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if rest.starts_with("{{") {
                lit.push('{');
                rest = &rest[2..];
            } else if rest.starts_with("}}") {
                lit.push('}');
                rest = &rest[2..];
            } else if c == '{' {
                match var_name_at(rest) {
                    Some(name) => {
                        if !lit.is_empty() {
                            pieces.push(Piece::Text(std::mem::take(&mut lit)));
                        }
                        pieces.push(Piece::Var(name.to_string()));
                        rest = &rest[name.len() + 2..];
                    }
                    None => {
                        lit.push('{');
                        rest = &rest[1..];
                    }
                }
            } else {
                lit.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Text(lit));
        }
        Template {
            field: field.to_string(),
            text: text.to_string(),
            pieces,
        }
    }

    /// The variables it uses, in order of first use.
    pub fn vars(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for p in &self.pieces {
            if let Piece::Var(v) = p {
                if !out.contains(&v.as_str()) {
                    out.push(v);
                }
            }
        }
        out
    }

    /// The first variable not in `known`, if any.
    pub fn unknown_var<'a>(&'a self, known: &dyn Fn(&str) -> bool) -> Option<&'a str> {
        self.vars().into_iter().find(|v| !known(v))
    }

    /// The text with every variable replaced (values go in as they are,
    /// unquoted). A variable missing from `vars` is an error naming it.
    pub fn expand(&self, vars: &Vars) -> Result<String, String> {
        let mut out = String::with_capacity(self.text.len() + 32);
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => match vars.get(v) {
                    Some(val) => out.push_str(val),
                    None => {
                        return Err(format!("{}: unknown variable {{{v}}}", self.field));
                    }
                },
            }
        }
        Ok(out)
    }
}

/// `{name}` at the start of `s`: the name, when it is one.
pub(super) fn var_name_at(s: &str) -> Option<&str> {
    let body = s.strip_prefix('{')?;
    let end = body.find('}')?;
    let name = &body[..end];
    let mut chars = name.chars();
    let first = chars.next()?;
    if (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        Some(name)
    } else {
        None
    }
}

/// The values of the variables for one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars(HashMap<String, String>);

impl Vars {
    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Sets `name`.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(name.to_string(), value.into());
    }
}
