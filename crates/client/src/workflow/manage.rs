//! Managing what a registry already holds: adding tags to a manifest without copying it, and
//! deleting a whole repository.

use std::collections::BTreeSet;

use ocireg_oci::{Digest, Reference, RepoName, Tag};

use super::progress::Progress;
use crate::error::ClientError;
use crate::registry::{Manifest, Registry};

/// Tags to add to a manifest of one repository.
#[derive(Debug, Clone)]
pub struct TagRequest {
    /// The repository.
    pub repo: RepoName,
    /// The manifest to tag (a tag or a digest).
    pub source: Reference,
    /// The tags to add.
    pub tags: Vec<Tag>,
    /// Whether a tag holding another manifest may be moved (`allow_overwrite`, or `--force`).
    pub allow_overwrite: bool,
    /// How the repository is named in messages (`host/repo`).
    pub shown: String,
}

/// What happened to one tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagOutcome {
    /// The tag.
    pub tag: Tag,
    /// It already pointed to the manifest; nothing was sent.
    pub unchanged: bool,
    /// The manifest it pointed to before, when it was moved.
    pub moved_from: Option<Digest>,
}

/// What `tag_manifest` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagReport {
    /// The tagged manifest's digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// One entry per requested tag, in order.
    pub tags: Vec<TagOutcome>,
}

/// Points every tag of `req.tags` at the manifest `req.source` names, by uploading the same
/// bytes with the same media type (nothing else is copied). The overwrite rule of `push` holds
/// for each tag, and every tag is checked before any is written, so a refusal changes nothing.
pub async fn tag_manifest(
    reg: &Registry,
    req: &TagRequest,
    progress: &dyn Progress,
) -> Result<TagReport, ClientError> {
    let m: Manifest = reg
        .get_manifest(&req.repo, &req.source, &[])
        .await
        .map_err(|e| ClientError::context(format!("fetching {}:{}", req.shown, req.source), e))?;
    let mut plan = Vec::with_capacity(req.tags.len());
    for tag in &req.tags {
        let r = Reference::Tag(tag.clone());
        let existing = reg
            .head_manifest(&req.repo, &r, &[])
            .await
            .map_err(|e| ClientError::context(format!("checking {}:{tag}", req.shown), e))?;
        let outcome = match existing {
            Some(e) if e.digest == m.digest => TagOutcome {
                tag: tag.clone(),
                unchanged: true,
                moved_from: None,
            },
            Some(e) if !req.allow_overwrite => {
                return Err(ClientError::TagInUse {
                    shown: format!("{}:{tag}", req.shown),
                    existing: e.digest,
                })
            }
            other => TagOutcome {
                tag: tag.clone(),
                unchanged: false,
                moved_from: other.map(|e| e.digest),
            },
        };
        plan.push(outcome);
    }
    for o in plan.iter().filter(|o| !o.unchanged) {
        progress.status(&format!("tagging {}:{} ...", req.shown, o.tag));
        reg.put_manifest(
            &req.repo,
            &Reference::Tag(o.tag.clone()),
            &m.media_type,
            m.bytes.clone(),
        )
        .await
        .map_err(|e| ClientError::context(format!("tagging {}:{}", req.shown, o.tag), e))?;
    }
    Ok(TagReport {
        digest: m.digest,
        media_type: m.media_type,
        tags: plan,
    })
}

/// What a repository holds, as far as the API can list it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoContents {
    /// Its tags.
    pub tags: Vec<String>,
    /// The manifests they point to, and the manifests that refer to those (referrers), each
    /// once: what deleting the repository deletes.
    pub manifests: Vec<Digest>,
}

/// Lists the tags of `repo`, the manifests they point to and the referrers of those.
pub async fn repo_contents(reg: &Registry, repo: &RepoName) -> Result<RepoContents, ClientError> {
    let tags = reg
        .tags(repo)
        .await
        .map_err(|e| ClientError::context(format!("listing the tags of {repo}"), e))?;
    let mut seen = BTreeSet::new();
    let mut manifests = Vec::new();
    let mut todo = Vec::new();
    for t in &tags {
        let Ok(tag) = t.parse::<Tag>() else { continue };
        if let Some(info) = reg.head_manifest(repo, &Reference::Tag(tag), &[]).await? {
            todo.push(info.digest);
        }
    }
    while let Some(d) = todo.pop() {
        if !seen.insert(d.clone()) {
            continue;
        }
        // A registry without the referrers API and without a fallback index has none to list.
        if let Ok(list) = reg.referrers(repo, &d, None).await {
            todo.extend(list.into_iter().map(|r| r.digest));
        }
        manifests.push(d);
    }
    Ok(RepoContents { tags, manifests })
}

/// Deletes every manifest of `contents` from `repo` by digest (which removes every tag
/// pointing to them). A manifest already gone counts as deleted. Returns how many were deleted.
pub async fn delete_repository(
    reg: &Registry,
    repo: &RepoName,
    contents: &RepoContents,
    progress: &dyn Progress,
) -> Result<usize, ClientError> {
    let mut deleted = 0;
    for d in &contents.manifests {
        progress.status(&format!("deleting {repo}@{d} ..."));
        match reg
            .delete_manifest(repo, &Reference::Digest(d.clone()))
            .await
        {
            Ok(()) => deleted += 1,
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(ClientError::context(format!("deleting {repo}@{d}"), e)),
        }
    }
    Ok(deleted)
}
