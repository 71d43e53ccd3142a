//! Writing images: CreateImage and tagging what it made.

use std::collections::BTreeMap;

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

use super::errors::is_server_side;
use super::{Ec2, one_try};
use crate::error::Error;
use crate::types::{ImageId, InstanceId, SnapshotId};

/// What to create: CreateImage's parameters, validated.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub instance_id: InstanceId,
    pub name: String,
    pub description: Option<String>,
    pub no_reboot: bool,
    pub image_tags: BTreeMap<String, String>,
    pub snapshot_tags: BTreeMap<String, String>,
}

/// How CreateImage ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Creation {
    Created(CreatedImage),
    /// EC2 said the name is taken, answering a *retry* of the request: CreateImage has no
    /// idempotency token, so the first try may have made the image after all.
    TakenOnRetry,
}

/// What CreateImage made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedImage {
    pub image_id: ImageId,
    /// False when the endpoint refused snapshot tags at creation: tag the snapshots afterwards.
    pub snapshot_tags_applied: bool,
}

impl Ec2 {
    /// Asks CreateImage, with DryRun, whether creating the image would succeed.
    pub async fn create_image_dry_run(&self, spec: &ImageSpec) -> Result<(), Error> {
        let result = self.create_image_request(spec, true).dry_run(true).send().await;
        match result {
            Err(err) if err.code() == Some("DryRunOperation") => Ok(()),
            Err(err) => Err(self.error("CreateImage", &err)),
            Ok(output) => Err(Error::Failed(format!(
                "the endpoint ignored DryRun and created image {}; deregister it with `amictl deregister`",
                output.image_id().unwrap_or("(no ID)")
            ))),
        }
    }

    /// Creates the image, tagging it (and its snapshots, where the endpoint allows that at
    /// creation) in the same request. A name already taken is an error, unless EC2 said so to
    /// a retry ([`Creation::TakenOnRetry`]).
    pub async fn create_image(&self, spec: &ImageSpec) -> Result<Creation, Error> {
        if !spec.snapshot_tags.is_empty() {
            // One try, no retries: an endpoint that can't tag snapshots at creation (moto
            // answers a 500) is asked again without them, and the snapshots are tagged later.
            let first = self
                .create_image_request(spec, true)
                .customize()
                .config_override(one_try())
                .send()
                .await;
            match first {
                Ok(output) => {
                    return Ok(Creation::Created(CreatedImage {
                        image_id: self.parse_image_id(output.image_id())?,
                        snapshot_tags_applied: true,
                    }));
                }
                Err(err) if is_server_side(&err) => {
                    tracing::info!("CreateImage with snapshot tags failed ({err}); trying again without them");
                }
                Err(err) => return Err(self.error("CreateImage", &err)),
            }
        }
        let attempts = AttemptCounter::default();
        let result = self
            .create_image_request(spec, false)
            .customize()
            .interceptor(attempts.clone())
            .send()
            .await;
        match result {
            Ok(output) => Ok(Creation::Created(CreatedImage {
                image_id: self.parse_image_id(output.image_id())?,
                snapshot_tags_applied: spec.snapshot_tags.is_empty(),
            })),
            Err(err) if err.code() == Some("InvalidAMIName.Duplicate") && attempts.count() > 1 => {
                Ok(Creation::TakenOnRetry)
            }
            Err(err) => Err(self.error("CreateImage", &err)),
        }
    }

    fn create_image_request(
        &self,
        spec: &ImageSpec,
        with_snapshot_tags: bool,
    ) -> aws_sdk_ec2::operation::create_image::builders::CreateImageFluentBuilder {
        let mut request = self
            .ec2()
            .create_image()
            .instance_id(spec.instance_id.as_str())
            .name(&spec.name)
            .set_description(spec.description.clone())
            .no_reboot(spec.no_reboot);
        if !spec.image_tags.is_empty() {
            request = request.tag_specifications(tag_specification(ResourceType::Image, &spec.image_tags));
        }
        if with_snapshot_tags && !spec.snapshot_tags.is_empty() {
            request = request.tag_specifications(tag_specification(ResourceType::Snapshot, &spec.snapshot_tags));
        }
        request
    }

    fn parse_image_id(&self, id: Option<&str>) -> Result<ImageId, Error> {
        id.and_then(|id| id.parse().ok()).ok_or_else(|| Error::Aws {
            action: "CreateImage",
            region: self.region.to_string(),
            code: "UnexpectedResponse".to_owned(),
            message: format!("the answer has no usable image ID ({id:?})"),
        })
    }

    /// Tags snapshots (CreateTags).
    pub async fn tag_snapshots(
        &self,
        snapshot_ids: &[SnapshotId],
        tags: &BTreeMap<String, String>,
    ) -> Result<(), Error> {
        if snapshot_ids.is_empty() || tags.is_empty() {
            return Ok(());
        }
        self.ec2()
            .create_tags()
            .set_resources(Some(snapshot_ids.iter().map(ToString::to_string).collect()))
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await
            .map_err(|err| self.error("CreateTags", &err))?;
        Ok(())
    }
}

pub(super) fn tag_specification(resource: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(sdk_tags(tags)))
        .build()
}

fn sdk_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Counts the attempts of one request, retries included.
#[derive(Debug, Clone, Default)]
struct AttemptCounter(std::sync::Arc<std::sync::atomic::AtomicU32>);

impl AttemptCounter {
    fn count(&self) -> u32 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for AttemptCounter {
    fn name(&self) -> &'static str {
        "AttemptCounter"
    }

    fn read_before_attempt(
        &self,
        _context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _cfg: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}
