//! The fixed label sets of the per-request series. Each is an enum indexing a dense array, so
//! recording never builds a label string.

use axum::http::Method;
use ocireg_api::{ApiError, Endpoint};

/// Number of endpoint labels.
pub(crate) const ENDPOINTS: usize = 9;
/// Number of method labels.
pub(crate) const METHODS: usize = 8;
/// Lowest status code with its own slot.
const STATUS_MIN: u16 = 100;
/// Highest status code with its own slot.
const STATUS_MAX: u16 = 599;
/// Status slots: one per code in `STATUS_MIN..=STATUS_MAX`, plus one for anything else.
pub(crate) const STATUS_SLOTS: usize = (STATUS_MAX - STATUS_MIN) as usize + 2;

/// Declares a label set from one list: an enum whose variants index a dense array in the
/// order listed, `ALL` (every label, in index order; its length is the set's size constant)
/// and `as_str` (the label value).
macro_rules! label_set {
    ($(#[$doc:meta])* $name:ident, $count:ident; $($variant:ident => $value:literal,)+) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $name {
            $($variant,)+
        }

        impl $name {
            /// All labels, in index order.
            pub(crate) const ALL: [$name; $count] = [$($name::$variant,)+];

            /// The label value.
            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $value,)+
                }
            }
        }
    };
}

label_set! {
    /// The `endpoint` label: the kind of API resource, derived from [`ocireg_api::Endpoint`]
    /// (never the raw path, which would make one series per repository).
    EndpointLabel, ENDPOINTS;
    Base => "base",
    Catalog => "catalog",
    Tags => "tags",
    Manifest => "manifest",
    Blob => "blob",
    Upload => "upload",
    Referrers => "referrers",
    Extension => "extension",
    Invalid => "invalid",
}

label_set! {
    /// The `method` label: the methods the API uses, anything else is `other`.
    MethodLabel, METHODS;
    Get => "GET",
    Head => "HEAD",
    Put => "PUT",
    Post => "POST",
    Patch => "PATCH",
    Delete => "DELETE",
    Options => "OPTIONS",
    Other => "other",
}

impl EndpointLabel {
    /// The label of a parsed request path (a path that does not parse is `invalid`).
    pub(crate) fn of(ep: &Result<Endpoint, ApiError>) -> EndpointLabel {
        match ep {
            Ok(Endpoint::Base) => EndpointLabel::Base,
            Ok(Endpoint::Catalog) => EndpointLabel::Catalog,
            Ok(Endpoint::Tags { .. }) => EndpointLabel::Tags,
            Ok(Endpoint::Manifest { .. }) => EndpointLabel::Manifest,
            Ok(Endpoint::Blob { .. }) => EndpointLabel::Blob,
            Ok(Endpoint::UploadStart { .. } | Endpoint::Upload { .. }) => EndpointLabel::Upload,
            Ok(Endpoint::Referrers { .. }) => EndpointLabel::Referrers,
            Ok(Endpoint::Extension { .. }) => EndpointLabel::Extension,
            Err(_) => EndpointLabel::Invalid,
        }
    }
}

impl MethodLabel {
    /// The label of a request method.
    pub(crate) fn of(m: &Method) -> MethodLabel {
        match *m {
            Method::GET => MethodLabel::Get,
            Method::HEAD => MethodLabel::Head,
            Method::PUT => MethodLabel::Put,
            Method::POST => MethodLabel::Post,
            Method::PATCH => MethodLabel::Patch,
            Method::DELETE => MethodLabel::Delete,
            Method::OPTIONS => MethodLabel::Options,
            _ => MethodLabel::Other,
        }
    }
}

/// The dense index of an (endpoint, method) pair in the per-pair series.
pub(crate) fn pair_index(ep: EndpointLabel, method: MethodLabel) -> usize {
    ep as usize * METHODS + method as usize
}

/// Every (endpoint, method) pair with its [`pair_index`], in index order.
pub(crate) fn pairs() -> impl Iterator<Item = (EndpointLabel, MethodLabel, usize)> {
    EndpointLabel::ALL.into_iter().flat_map(|ep| {
        MethodLabel::ALL
            .into_iter()
            .map(move |method| (ep, method, pair_index(ep, method)))
    })
}

/// The slot of a status code.
pub(crate) fn status_slot(status: u16) -> usize {
    if (STATUS_MIN..=STATUS_MAX).contains(&status) {
        usize::from(status - STATUS_MIN)
    } else {
        STATUS_SLOTS - 1
    }
}

/// The `status` label value of a slot (`None` for the catch-all slot, shown as `other`).
pub(crate) fn slot_status(slot: usize) -> Option<u16> {
    u16::try_from(slot)
        .ok()
        .map(|s| s + STATUS_MIN)
        .filter(|s| *s <= STATUS_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_match_the_tables() {
        for (i, e) in EndpointLabel::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i);
        }
        for (i, m) in MethodLabel::ALL.iter().enumerate() {
            assert_eq!(*m as usize, i);
        }
        for (i, (_, _, pair)) in pairs().enumerate() {
            assert_eq!(pair, i);
        }
    }

    #[test]
    fn status_slots_round_trip() {
        for s in [100u16, 200, 404, 599] {
            assert_eq!(slot_status(status_slot(s)), Some(s));
        }
        assert_eq!(status_slot(600), STATUS_SLOTS - 1);
        assert_eq!(status_slot(99), STATUS_SLOTS - 1);
        assert_eq!(slot_status(STATUS_SLOTS - 1), None);
    }

    #[test]
    fn endpoints_from_paths() {
        let of = |p: &str| EndpointLabel::of(&ocireg_api::parse_path(p)).as_str();
        assert_eq!(of("/v2/"), "base");
        assert_eq!(of("/v2/_catalog"), "catalog");
        assert_eq!(of("/v2/a/b/tags/list"), "tags");
        assert_eq!(of("/v2/a/manifests/latest"), "manifest");
        assert_eq!(of("/v2/a/blobs/uploads/"), "upload");
        assert_eq!(of("/v2/_ocireg/search"), "extension");
        assert_eq!(of("/nope"), "invalid");
    }
}
