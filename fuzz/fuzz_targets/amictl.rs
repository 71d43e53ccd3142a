// amictl's own parsers and plan, compiled into the fuzz targets as they are in the binary.

#[allow(dead_code, unused_imports)]
#[path = "../../src/model.rs"]
pub mod model;
#[allow(dead_code, unused_imports)]
#[path = "../../src/pipeline/plan.rs"]
pub mod plan;
#[allow(dead_code, unused_imports)]
#[path = "../../src/types.rs"]
pub mod types;
