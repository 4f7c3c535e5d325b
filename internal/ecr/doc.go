// Package ecr is berth's Amazon ECR token helper: with the EC2 instance
// role's credentials (IMDSv2, Signature Version 4 as internal/ssmfetch
// signs), it calls ECR's GetAuthorizationToken and returns a docker
// config.json for the image's registry, which the pre-start hook writes on
// tmpfs for the unit's pull (spec pullSecret: aws:ecr, berth ecr-login).
package ecr
