//! Authorization with htpasswd users, access rules and the token endpoint.

use reqwest::StatusCode;

use crate::support::*;

#[test]
fn multi_user_refusals_and_token_endpoint() {
    let s = multi(300);
    let r = push_blob(&s.base, "team/app", b"x", None);
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&r),
        format!(
            "Bearer realm=\"{}/v2/_ocireg/token\",service=\"ocireg\",scope=\"repository:team/app:pull,push\"",
            s.base
        )
    );
    assert_eq!(error_code(r), "UNAUTHORIZED");
    let r = push_blob(&s.base, "team/app", b"x", Some(("alice", "nope")));
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).starts_with("Bearer realm="));
    // alice may not write prod/**: 403 DENIED; bob may.
    let r = push_blob(&s.base, "prod/app", b"x", Some(("alice", "alicepw")));
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(r), "DENIED");
    let r = push_blob(&s.base, "prod/app", b"x", Some(("bob", "bobpw")));
    assert_eq!(r.status(), StatusCode::CREATED);
    // A token for alice asking for push on prod/app is narrowed to pull.
    let token = token(&s, "alice", "alicepw", "repository:prod/app:pull,push");
    let url = format!("{}/v2/prod/app/blobs/uploads/?digest={}", s.base, sha(b"w"));
    let r = client()
        .post(&url)
        .bearer_auth(&token)
        .body("w")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = client()
        .get(format!("{}/v2/prod/app/blobs/{}", s.base, sha(b"x")))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Catalog as alice lists what she can read (everything here); deleting needs an admin.
    let del = format!("{}/v2/prod/app/blobs/{}", s.base, sha(b"x"));
    let delete_as = |user: &str, pass: &str| {
        let r = client().delete(&del).basic_auth(user, Some(pass)).send();
        r.unwrap().status()
    };
    assert_eq!(delete_as("bob", "bobpw"), StatusCode::FORBIDDEN);
    let admin = delete_as("admin", "adminpw");
    assert_ne!(admin, StatusCode::FORBIDDEN);
    assert_ne!(admin, StatusCode::UNAUTHORIZED);
}
