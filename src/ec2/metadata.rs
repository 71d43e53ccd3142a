//! The instance metadata service (IMDSv2): which instance, in which region, amictl runs on.

use std::time::Duration;

use crate::error::Error;
use crate::types::{InstanceId, Region};

/// Off EC2 nothing answers at the metadata address; this is how long that may cost.
const METADATA_BUDGET: Duration = Duration::from_millis(1500);

/// The instance amictl runs on, as the metadata service tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThisInstance {
    pub instance_id: InstanceId,
    pub region: Region,
}

/// Asks the metadata service (aws-config's IMDSv2 client, which honours
/// AWS_EC2_METADATA_SERVICE_ENDPOINT) for this instance's ID and region. Disabled
/// (AWS_EC2_METADATA_DISABLED) or silent within a second and a half: a usage error that says
/// to pass `--instance-id`.
pub async fn this_instance() -> Result<ThisInstance, Error> {
    let off_ec2 = |why: &str| {
        Error::Usage(format!(
            "no --instance-id, and this is not an EC2 instance ({why}); pass --instance-id, or run amictl on the instance to image"
        ))
    };
    let disabled = std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if disabled {
        return Err(off_ec2(
            "the instance metadata service is disabled by AWS_EC2_METADATA_DISABLED",
        ));
    }
    let client = aws_config::imds::Client::builder()
        .max_attempts(1)
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(1))
        .build();
    let ask = async {
        let instance_id = client.get("/latest/meta-data/instance-id").await?;
        let region = client.get("/latest/meta-data/placement/region").await?;
        Ok::<_, aws_config::imds::client::error::ImdsError>((instance_id, region))
    };
    let (instance_id, region) = match tokio::time::timeout(METADATA_BUDGET, ask).await {
        Ok(Ok(answers)) => answers,
        Ok(Err(err)) => {
            return Err(off_ec2(&format!("the instance metadata service did not answer: {err}")));
        }
        Err(_) => {
            return Err(off_ec2("the instance metadata service did not answer in time"));
        }
    };
    let unusable = |what: &str, why: String| {
        Error::Failed(format!("the instance metadata service gave an unusable {what}: {why}"))
    };
    Ok(ThisInstance {
        instance_id: instance_id
            .as_ref()
            .parse()
            .map_err(|why| unusable("instance ID", why))?,
        region: region.as_ref().parse().map_err(|why| unusable("region", why))?,
    })
}
