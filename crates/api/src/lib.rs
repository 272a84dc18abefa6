//! The OCI Distribution HTTP API as data: request path → [`Endpoint`], required access, URL
//! builders, and `Range`/`Content-Range`/`Link`/pagination parsing; shared by server and client.

mod error;
mod headers;
mod routes;
mod urls;

pub use error::ApiError;
pub use headers::{format_upload_range, parse_content_range, parse_range, parse_upload_range};
pub use routes::{
    parse_path, parse_request, required_access, required_action, Access, Action, Endpoint,
    API_METHODS,
};
pub use urls::{
    blob_path, catalog_path, encode_query_value, link_header, manifest_path, parse_link_next,
    parse_pagination, query_param, referrers_path, tags_path, upload_path, upload_start_path,
    Pagination,
};

#[cfg(test)]
mod tests;
