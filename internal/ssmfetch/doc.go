// Package ssmfetch fetches SSM Parameter Store parameters with an EC2
// instance role's credentials and writes them to files, using only the
// standard library: IMDSv2 for the region and the role's credentials,
// Signature Version 4 for ssm:GetParameter (WithDecryption, so SecureString
// values arrive decrypted). Flatcar nodes have no aws CLI; "berth ssm-fetch"
// runs this at boot to install etcd's certificates (docs/security.md).
package ssmfetch
