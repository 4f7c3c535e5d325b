// Package route53dns is a libdns provider (RecordAppender, RecordDeleter)
// for one Amazon Route53 hosted zone, so that certmagic's
// DNS01Solver can answer ACME DNS-01 challenges for wildcard domains.
//
// It speaks Route53's REST API (2013-04-01: ListResourceRecordSets,
// ChangeResourceRecordSets, GetChange) with XML bodies, signed with
// Signature Version 4 (internal/ssmfetch), with the instance role's
// credentials from the metadata service, or AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN when set. This avoids the AWS
// SDK, which libdns/route53 pulls in, for three calls.
//
// Route53 keeps one record set per name and type: adding a TXT value to a
// name that has one (example.com and *.example.com both validate at
// _acme-challenge.example.com) rewrites the set with both values, removing
// one rewrites it with the rest, removing the last deletes it. A change
// returns once Route53 reports it INSYNC on its name servers.
package route53dns
