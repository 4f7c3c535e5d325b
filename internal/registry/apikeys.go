package registry

import (
	"fmt"
	"regexp"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// reTokenHash is a token's key segment: the hex SHA-256 of the token.
var reTokenHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

// TokensPrefix is the prefix of the API's bearer tokens
// (<root>/v1/tokens/<sha256 hex of the token>): only hashes are stored.
func (k Keys) TokensPrefix() string { return k.Prefix() + "tokens/" }

// Token is the key of the API token whose SHA-256 is hash (hex).
func (k Keys) Token(hash string) (string, error) {
	if !reTokenHash.MatchString(hash) {
		return "", fmt.Errorf("%w: token hash %q (64 lowercase hex digits)", ErrBadName, hash)
	}
	return k.TokensPrefix() + hash, nil
}

// AuditPrefix is the prefix of the API's audit log
// (<root>/v1/audit/<unix ms, 13 digits>-<request id>-<n>), each record on
// a lease that bounds its retention.
func (k Keys) AuditPrefix() string { return k.Prefix() + "audit/" }

// Audit is the key of the n-th transaction of an API request at ms.
func (k Keys) Audit(ms int64, request string, n int) (string, error) {
	if request == "" || !reApp.MatchString(request) {
		return "", fmt.Errorf("%w: audit request id %q", ErrBadName, request)
	}
	return fmt.Sprintf("%s%013d-%s-%d", k.AuditPrefix(), ms, request, n), nil
}

// listRanges are the key ranges the watch cache lists: the v1 prefix
// without the audit log, which no view holds and which would make every
// re-list of every router read a month of API history.
func (k Keys) listRanges() [][2]string {
	audit := k.AuditPrefix()
	return [][2]string{
		{k.Prefix(), audit},
		{clientv3.GetPrefixRangeEnd(audit), clientv3.GetPrefixRangeEnd(k.Prefix())},
	}
}
