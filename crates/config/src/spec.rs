//! Field tables: the single description of every schema, from which the Rust types, the
//! validation pass, the defaults and the JSON Schema are all generated.

use std::fmt;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::error::FieldError;
use crate::normalize::View;

/// A field's type, in the seed's (KCL's) type language.
#[derive(Clone, Copy, Debug)]
pub enum Ty {
    /// `str`
    Str,
    /// `int` (64-bit; floats and bools rejected)
    Int,
    /// `float` (ints accepted, as in KCL)
    Float,
    /// `bool`
    Bool,
    /// A literal union such as `"local" | "remote" | "disabled"`.
    Lit(&'static [&'static str]),
    /// `[T]`
    List(fn() -> Ty),
    /// `{str: T}`
    Dict(fn() -> Ty),
    /// A nested schema.
    Schema(fn() -> SchemaSpec),
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Str => f.write_str("str"),
            Ty::Int => f.write_str("int"),
            Ty::Float => f.write_str("float"),
            Ty::Bool => f.write_str("bool"),
            Ty::Lit(values) => {
                let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
                f.write_str(&quoted.join(" | "))
            }
            Ty::List(inner) => write!(f, "[{}]", inner()),
            Ty::Dict(inner) => write!(f, "{{str: {}}}", inner()),
            Ty::Schema(spec) => f.write_str(spec().name),
        }
    }
}

/// How a field gets its value when the input leaves it out (or gives `null`).
#[derive(Clone, Copy, Debug)]
pub enum DefaultSpec {
    /// A constant, e.g. `port?: int = 5000`.
    Const(fn() -> Value),
    /// Computed from the instance's other (already defaulted) fields, e.g.
    /// `log_file?: str = "${data_dir}/registry.log"`; the string describes it.
    Computed(fn(&Map<String, Value>) -> Option<Value>, &'static str),
}

/// One attribute of a schema.
#[derive(Clone, Debug)]
pub struct FieldSpec {
    /// The attribute name as written in the seed (e.g. `type`).
    pub key: &'static str,
    /// Its type.
    pub ty: Ty,
    /// Declared with `?` in the seed.
    pub optional: bool,
    /// Its default, if the seed gives one.
    pub default: Option<DefaultSpec>,
    /// The seed's comment above it (raw doc-comment lines).
    pub doc: &'static str,
}

impl FieldSpec {
    /// Must the input give this field (no `?` and no default)?
    pub fn required(&self) -> bool {
        !self.optional && self.default.is_none()
    }

    /// The doc text with each line trimmed, lines joined by a space.
    pub fn description(&self) -> String {
        clean_doc(self.doc, " ")
    }
}

/// The checks of one schema, run on its (defaulted) instance.
pub type CheckFn = fn(&View<'_>, &mut Vec<FieldError>);

/// One schema of the seed.
#[derive(Clone, Debug)]
pub struct SchemaSpec {
    /// The schema name, e.g. `LocalHTTPConfig`.
    pub name: &'static str,
    /// The seed's docstring (raw doc-comment lines).
    pub doc: &'static str,
    /// Its attributes, in the seed's order.
    pub fields: Vec<FieldSpec>,
    /// Its `check:` block.
    pub checks: CheckFn,
}

impl SchemaSpec {
    /// The field named `key`.
    pub fn field(&self, key: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.key == key)
    }

    /// The docstring with each line trimmed, lines joined by newlines.
    pub fn description(&self) -> String {
        clean_doc(self.doc, "\n")
    }
}

fn clean_doc(doc: &str, sep: &str) -> String {
    let lines: Vec<&str> = doc
        .lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    let text = lines.join(sep);
    text.trim().to_string()
}

/// Maps a Rust field type to its seed type.
pub trait FieldKind {
    /// The seed type.
    fn ty() -> Ty;
}

/// `FieldKind` for the scalar Rust types, each with its seed type.
macro_rules! scalar_field_kinds {
    ($($rust:ty => $seed:ident),* $(,)?) => {
        $(impl FieldKind for $rust {
            fn ty() -> Ty {
                Ty::$seed
            }
        })*
    };
}
scalar_field_kinds!(String => Str, i64 => Int, f64 => Float, bool => Bool);
impl<T: FieldKind> FieldKind for Option<T> {
    fn ty() -> Ty {
        T::ty()
    }
}
impl<T: FieldKind> FieldKind for Vec<T> {
    fn ty() -> Ty {
        Ty::List(T::ty)
    }
}
impl<T: FieldKind> FieldKind for IndexMap<String, T> {
    fn ty() -> Ty {
        Ty::Dict(T::ty)
    }
}

/// Whether a field value is left out when serializing (only `None` is).
pub trait Absent {
    /// True for `None`.
    fn is_absent(&self) -> bool {
        false
    }
}
impl Absent for String {}
impl Absent for i64 {}
impl Absent for f64 {}
impl Absent for bool {}
impl<T> Absent for Vec<T> {}
impl<T> Absent for IndexMap<String, T> {}
impl<T> Absent for Option<T> {
    fn is_absent(&self) -> bool {
        self.is_none()
    }
}

/// A literal union of the seed as a Rust enum serialized as the seed's strings.
macro_rules! literal_enum {
    ($(#[doc = $doc:literal])* $name:ident { $($var:ident = $s:literal),+ $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $(#[doc = concat!("`\"", $s, "\"`")] #[serde(rename = $s)] $var),+
        }
        impl $name {
            /// The seed's strings, in the seed's order.
            pub const VALUES: &'static [&'static str] = &[$($s),+];
            /// The seed's string for this value.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$var => $s),+ }
            }
        }
        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok(Self::$var),)+
                    other => Err(format!("expected one of {:?}, got {other:?}", Self::VALUES)),
                }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl $crate::spec::FieldKind for $name {
            fn ty() -> $crate::spec::Ty {
                $crate::spec::Ty::Lit(Self::VALUES)
            }
        }
        impl $crate::spec::Absent for $name {}
    };
}
pub(crate) use literal_enum;

/// The (optional?, default) pair of a field mode.
macro_rules! field_mode {
    (req) => {
        (false, None)
    };
    (opt) => {
        (true, None)
    };
    (def $v:expr) => {
        (
            false,
            Some($crate::spec::DefaultSpec::Const(|| {
                serde_json::Value::from($v)
            })),
        )
    };
    (opt_def $v:expr) => {
        (
            true,
            Some($crate::spec::DefaultSpec::Const(|| {
                serde_json::Value::from($v)
            })),
        )
    };
    (computed $f:expr, $d:expr) => {
        (false, Some($crate::spec::DefaultSpec::Computed($f, $d)))
    };
    (opt_computed $f:expr, $d:expr) => {
        (true, Some($crate::spec::DefaultSpec::Computed($f, $d)))
    };
}
pub(crate) use field_mode;

/// The first of its arguments.
macro_rules! first {
    ($a:expr $(, $rest:expr)*) => {
        $a
    };
}
pub(crate) use first;

/// One schema: generates the struct (serde in the seed's field order), its field table
/// (`spec()`), and its `FieldKind`.
///
/// Field modes: `req` (`x: T`), `opt` (`x?: T`, Rust `Option<T>`), `def(v)` (`x: T = v`),
/// `opt_def(v)` (`x?: T = v`), `computed(f, desc)`, `opt_computed(f, desc)`. Fields in `extra`
/// are Rust-only `Option`s not in the field table (the registry's `zot_features` /
/// `harbor_config`, validated through the sub-schemas).
macro_rules! schema {
    (
        $(#[doc = $doc:literal])*
        $name:ident, checks = $checks:path;
        fields {
            $(
                $(#[doc = $fdoc:literal])*
                $f:ident $([$key:literal])? : $rty:ty = $mode:ident $(($($arg:expr),+))? ;
            )*
        }
        $(extra {
            $( $(#[doc = $xdoc:literal])* $x:ident : $xty:ty ; )*
        })?
    ) => {
        $(#[doc = $doc])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct $name {
            $(
                $(#[doc = $fdoc])*
                #[serde(skip_serializing_if = "crate::spec::Absent::is_absent")]
                pub $f: $rty,
            )*
            $($(
                $(#[doc = $xdoc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $x: Option<$xty>,
            )*)?
        }

        impl $name {
            /// The field table of this schema.
            pub fn spec() -> $crate::spec::SchemaSpec {
                $crate::spec::SchemaSpec {
                    name: stringify!($name),
                    doc: concat!($($doc, "\n"),*),
                    checks: $checks,
                    fields: vec![$(
                        {
                            let (optional, default) =
                                $crate::spec::field_mode!($mode $($($arg),+)?);
                            $crate::spec::FieldSpec {
                                key: $crate::spec::first!($($key,)? stringify!($f)),
                                ty: <$rty as $crate::spec::FieldKind>::ty(),
                                optional,
                                default,
                                doc: concat!($($fdoc, "\n"),*),
                            }
                        }
                    ),*],
                }
            }
        }

        impl $crate::spec::FieldKind for $name {
            fn ty() -> $crate::spec::Ty {
                $crate::spec::Ty::Schema(Self::spec)
            }
        }
        impl $crate::spec::Absent for $name {}
    };
}
pub(crate) use schema;
