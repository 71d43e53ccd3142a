//! What EC2 itself knows of images: the resources that reference them
//! (DescribeImageReferences) and the images in the Recycle Bin (ListImagesInRecycleBin).
//! Not every endpoint offers these: the first request is tried once, and an endpoint that
//! doesn't know it is told apart from one that refuses the caller.

use std::collections::BTreeSet;

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    ImageReferenceOptionName, ImageReferenceResourceType, ResourceTypeOption, ResourceTypeRequest,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use futures::StreamExt;

use super::super::errors::is_server_side;
use super::super::{Ec2, one_try};
use crate::error::Error;
use crate::model::{ImageUser, RecycleBin, UserKind};
use crate::types::ImageId;

/// DescribeImageReferences takes at most this many images.
const IMAGES_PER_READ: usize = 10;
/// Reads of image references in flight at once.
const CONCURRENT_READS: usize = 8;

/// The endpoint doesn't know the action: it says so with one of these codes, or (moto) answers
/// with a server error that isn't an EC2 error at all. A throttle or an EC2 `InternalError`
/// is not that: those are retried as usual.
fn not_offered<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<String> {
    match err.code() {
        Some(code @ ("InvalidAction" | "UnsupportedOperation" | "NotImplemented" | "UnknownOperationException")) => {
            Some(format!("the endpoint does not offer it ({code})"))
        }
        None if is_server_side(err) && err.raw_response().is_some() => {
            Some("the endpoint answered with a server error, not an EC2 answer".to_owned())
        }
        _ => None,
    }
}

/// Sends a request; the first of an action not every endpoint offers (`probe`) is tried once
/// (`send(true)`), since an endpoint that lacks it would otherwise be asked ten times. Anything
/// else that first try meets (a throttle, an EC2 `InternalError`) gets the usual retries.
async fn send_probing<T, E, F, Fut>(probe: bool, send: F) -> Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata,
    F: Fn(bool) -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
{
    if !probe {
        return send(false).await;
    }
    match send(true).await {
        Err(err) if not_offered(&err).is_none() => send(false).await,
        tried => tried,
    }
}

impl Ec2 {
    /// What EC2 says references these images: instances (not terminated), launch template
    /// versions, SSM parameters, Image Builder recipes. Where the endpoint doesn't offer it,
    /// nothing, with a note why (the scans answer for what they cover).
    pub(super) async fn image_references(
        &self,
        image_ids: &[ImageId],
    ) -> Result<(Vec<(String, ImageUser)>, Vec<String>), Error> {
        let mut chunks = image_ids.chunks(IMAGES_PER_READ);
        let Some(first) = chunks.next() else {
            return Ok((Vec::new(), Vec::new()));
        };
        let mut found = match self.references_of(first, true).await {
            Ok(found) => found,
            Err(Probe::NotOffered(why)) => {
                return Ok((
                    Vec::new(),
                    vec![format!(
                        "DescribeImageReferences: {why}; the scans of instances, templates, groups, fleets and SSM parameters are the answer (Image Builder recipes are not checked)"
                    )],
                ));
            }
            Err(Probe::Failed(err)) => return Err(err),
        };
        let rest: Vec<_> = futures::stream::iter(chunks)
            .map(|chunk| self.references_of(chunk, false))
            .buffer_unordered(CONCURRENT_READS)
            .collect()
            .await;
        for read in rest {
            match read {
                Ok(more) => found.extend(more),
                Err(Probe::Failed(err)) => return Err(err),
                Err(Probe::NotOffered(why)) => {
                    return Err(Error::Failed(format!(
                        "DescribeImageReferences failed in {}: {why}; run again",
                        self.region
                    )));
                }
            }
        }
        Ok((found, Vec::new()))
    }

    /// One read of up to ten images, every page; `probe`: the first request is tried once.
    async fn references_of(&self, image_ids: &[ImageId], probe: bool) -> Result<Vec<(String, ImageUser)>, Probe> {
        let not_terminated = ResourceTypeOption::builder()
            .option_name(ImageReferenceOptionName::StateName)
            .set_option_values(Some(
                ["pending", "running", "shutting-down", "stopping", "stopped"]
                    .map(str::to_owned)
                    .to_vec(),
            ))
            .build();
        let kinds = [
            ImageReferenceResourceType::Ec2LaunchTemplate,
            ImageReferenceResourceType::SsmParameter,
            ImageReferenceResourceType::ImageBuilderImageRecipe,
            ImageReferenceResourceType::ImageBuilderContainerRecipe,
        ];
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        let mut first = probe;
        loop {
            let mut request = self
                .client
                .describe_image_references()
                .set_image_ids(Some(image_ids.iter().map(ToString::to_string).collect()))
                .resource_types(
                    ResourceTypeRequest::builder()
                        .resource_type(ImageReferenceResourceType::Ec2Instance)
                        .resource_type_options(not_terminated.clone())
                        .build(),
                )
                .set_next_token(token.take());
            for kind in &kinds {
                request = request.resource_types(ResourceTypeRequest::builder().resource_type(kind.clone()).build());
            }
            let page = if first {
                // The probe: is the action offered at all?
                let result = send_probing(true, |once| {
                    let request = request.clone();
                    async move {
                        if once {
                            request.customize().config_override(one_try()).send().await
                        } else {
                            request.send().await
                        }
                    }
                })
                .await;
                result.map_err(|err| match not_offered(&err) {
                    Some(why) => Probe::NotOffered(why),
                    None => Probe::Failed(self.error("DescribeImageReferences", &err)),
                })?
            } else {
                // Offered: paced as the account's DescribeImageReferences stream.
                let stream = self.streams.of("DescribeImageReferences");
                self.streams
                    .send(&stream, |config| {
                        let request = request.clone();
                        async move {
                            request
                                .customize()
                                .config_override(config)
                                .send()
                                .await
                                .map_err(|err| self.error("DescribeImageReferences", &err))
                        }
                    })
                    .await
                    .map_err(Probe::Failed)?
            };
            first = false;
            for reference in page.image_references() {
                if let (Some(image), Some(arn)) = (reference.image_id(), reference.arn()) {
                    found.push((image.to_owned(), ImageUser::new(UserKind::Reference, arn)));
                }
            }
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => return Ok(found),
            }
        }
    }

    /// The images in the Recycle Bin (their snapshots are not orphans: a restored image needs
    /// them). `NotOffered` where the endpoint doesn't have the Recycle Bin.
    pub async fn recycle_bin(&self) -> Result<RecycleBin, Error> {
        let mut images = BTreeSet::new();
        let mut token: Option<String> = None;
        let mut first = true;
        loop {
            let request = self
                .client
                .list_images_in_recycle_bin()
                .max_results(1000)
                .set_next_token(token.take());
            let result = send_probing(first, |once| {
                let request = request.clone();
                async move {
                    if once {
                        request.customize().config_override(one_try()).send().await
                    } else {
                        request.send().await
                    }
                }
            })
            .await;
            let page = match result {
                Ok(page) => page,
                Err(err) if first && not_offered(&err).is_some() => return Ok(RecycleBin::NotOffered),
                Err(err) => return Err(self.error("ListImagesInRecycleBin", &err)),
            };
            first = false;
            images.extend(page.images().iter().filter_map(|i| i.image_id()).map(ImageId::from_ec2));
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => return Ok(RecycleBin::Images(images)),
            }
        }
    }
}

/// How a first request of an action not every endpoint offers ended.
enum Probe {
    NotOffered(String),
    Failed(Error),
}
