//! Reading instances: the one an image is made from.

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types as sdk;

use super::Ec2;
use crate::error::Error;
use crate::model::Instance;
use crate::types::InstanceId;

/// The instance states of instances that exist or will (an image they were launched from is
/// in use); a `terminated` instance is only a record.
pub const NOT_TERMINATED: [&str; 5] = ["pending", "running", "shutting-down", "stopping", "stopped"];

impl Ec2 {
    /// The instance with this ID; not found is an error naming it and the region.
    pub async fn describe_instance(&self, id: &InstanceId) -> Result<Instance, Error> {
        let not_found = || Error::NotFound {
            what: format!("instance {id}"),
            region: self.region.to_string(),
        };
        let output = self
            .ec2()
            .describe_instances()
            .instance_ids(id.as_str())
            .send()
            .await
            .map_err(|err| match err.code() {
                Some("InvalidInstanceID.NotFound") => not_found(),
                _ => self.error("DescribeInstances", &err),
            })?;
        output
            .reservations()
            .iter()
            .flat_map(sdk::Reservation::instances)
            .find(|i| i.instance_id() == Some(id.as_str()))
            .map(instance_from_sdk)
            .ok_or_else(not_found)
    }
}

fn instance_from_sdk(instance: &sdk::Instance) -> Instance {
    Instance {
        instance_id: instance.instance_id().unwrap_or_default().to_owned(),
        state: instance
            .state()
            .and_then(sdk::InstanceState::name)
            .map(|s| s.as_str().to_owned()),
        root_device_type: instance.root_device_type().map(|t| t.as_str().to_owned()),
        tags: instance
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
            .collect(),
    }
}
