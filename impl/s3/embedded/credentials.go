package embedded

import "github.com/mount-s3/mount-s3/impl/s3"

// Credentials are what clients of the embedded server sign with. The server checks no
// signature; any key works, this one just keeps the SDK from searching for real ones.
var Credentials = s3.StaticCredentials{AccessKeyID: "mount-s3-embedded", SecretAccessKey: "mount-s3-embedded"}
