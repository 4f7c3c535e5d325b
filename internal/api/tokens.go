package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
)

// Token scopes: read answers GET requests; admin also mutations.
const (
	ScopeRead  = "read"
	ScopeAdmin = "admin"
)

// tokenPrefix starts every token, so a leaked one is recognisable
// (secret scanners) and a typo'd one is refused before any etcd read.
const tokenPrefix = "berth_"

// ErrNoToken is returned (wrapped) by RevokeTokens when no token matches.
var ErrNoToken = errors.New("no such token")

// TokenRecord is the value of <root>/v1/tokens/<sha256 hex>: the token
// itself is never stored.
type TokenRecord struct {
	Name    string `json:"name"`
	Scope   string `json:"scope"`           // read or admin
	Created int64  `json:"created"`         // unix ms
	By      string `json:"by,omitempty"`    // who created it (user@host, or "berth up")
	Lease   int64  `json:"lease,omitempty"` // set for a token that ends with its lease (berth up's)
}

// TokenInfo is a token as "berth token list" shows it.
type TokenInfo struct {
	ID string `json:"id"` // the first 12 hex digits of its hash
	TokenRecord
	Hash string `json:"-"`
}

// TokenOptions are the options of CreateToken.
type TokenOptions struct {
	Name  string           // default "token-<id>"
	Scope string           // read or admin (required)
	By    string           // who creates it
	Lease clientv3.LeaseID // 0: the token lasts until revoked
	Now   func() time.Time
}

// HashToken returns the hex SHA-256 of a token: its key segment.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CheckScope refuses a scope other than read and admin.
func CheckScope(scope string) error {
	if scope != ScopeRead && scope != ScopeAdmin {
		return fmt.Errorf("scope must be %s or %s, got %q", ScopeRead, ScopeAdmin, scope)
	}
	return nil
}

// MintToken makes a random token (32 bytes from crypto/rand) and returns
// it with the key and value of its record: what CreateToken stores, and
// what berth up puts on its lease.
func MintToken(k registry.Keys, o TokenOptions) (token, key, value string, info TokenInfo, err error) {
	if err := CheckScope(o.Scope); err != nil {
		return "", "", "", TokenInfo{}, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", "", TokenInfo{}, err
	}
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	hash := HashToken(token)
	if o.Name == "" {
		o.Name = "token-" + hash[:12]
	}
	if len(o.Name) > 64 || strings.ContainsAny(o.Name, "\x00\n\r\t") {
		return "", "", "", TokenInfo{}, fmt.Errorf("name %q: at most 64 characters, no control characters", o.Name)
	}
	if key, err = k.Token(hash); err != nil {
		return "", "", "", TokenInfo{}, err
	}
	rec := TokenRecord{Name: o.Name, Scope: o.Scope, Created: o.Now().UnixMilli(), By: o.By, Lease: int64(o.Lease)}
	b, _ := json.Marshal(rec)
	return token, key, string(b), TokenInfo{ID: hash[:12], TokenRecord: rec, Hash: hash}, nil
}

// CreateToken mints a token and stores its record (a name in use is
// refused) and returns the token: shown once, never stored.
func CreateToken(ctx context.Context, kv clientv3.KV, k registry.Keys, o TokenOptions) (string, TokenInfo, error) {
	token, key, value, info, err := MintToken(k, o)
	if err != nil {
		return "", TokenInfo{}, err
	}
	existing, err := ListTokens(ctx, kv, k)
	if err != nil {
		return "", TokenInfo{}, err
	}
	for _, t := range existing {
		if t.Name == info.Name {
			return "", TokenInfo{}, fmt.Errorf("a token named %q exists (id %s): revoke it first or choose another --name", info.Name, t.ID)
		}
	}
	var opts []clientv3.OpOption
	if o.Lease != 0 {
		opts = append(opts, clientv3.WithLease(o.Lease))
	}
	resp, err := kv.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, value, opts...)).Commit()
	if err != nil {
		return "", TokenInfo{}, fmt.Errorf("store token: %w", err)
	}
	if !resp.Succeeded {
		return "", TokenInfo{}, fmt.Errorf("store token: %w", registry.ErrConflict)
	}
	return token, info, nil
}

// ListTokens returns every token's record, sorted by name. Records that
// do not decode are skipped.
func ListTokens(ctx context.Context, kv clientv3.KV, k registry.Keys) ([]TokenInfo, error) {
	resp, err := kv.Get(ctx, k.TokensPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out := []TokenInfo{}
	for _, kv := range resp.Kvs {
		hash := strings.TrimPrefix(string(kv.Key), k.TokensPrefix())
		var rec TokenRecord
		if len(hash) != 64 || json.Unmarshal(kv.Value, &rec) != nil {
			continue
		}
		out = append(out, TokenInfo{ID: hash[:12], TokenRecord: rec, Hash: hash})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RevokeTokens deletes the tokens whose name or id (or a prefix of at
// least 6 digits of the id) is ref, in one transaction, and returns them.
// No match is ErrNoToken.
func RevokeTokens(ctx context.Context, kv clientv3.KV, k registry.Keys, ref string) ([]TokenInfo, error) {
	all, err := ListTokens(ctx, kv, k)
	if err != nil {
		return nil, err
	}
	var gone []TokenInfo
	var ops []clientv3.Op
	for _, t := range all {
		if t.Name == ref || len(ref) >= 6 && strings.HasPrefix(t.Hash, ref) {
			key, _ := k.Token(t.Hash)
			gone = append(gone, t)
			ops = append(ops, clientv3.OpDelete(key))
		}
	}
	if len(gone) == 0 {
		return nil, fmt.Errorf("%w: %q matches no token's name or id (berth token list)", ErrNoToken, ref)
	}
	if _, err := kv.Txn(ctx).Then(ops...).Commit(); err != nil {
		return nil, fmt.Errorf("revoke: %w", err)
	}
	return gone, nil
}

// lookupToken reads a token's record; nil if it does not exist.
func lookupToken(ctx context.Context, kv clientv3.KV, k registry.Keys, token string) (*TokenRecord, error) {
	key, err := k.Token(HashToken(token))
	if err != nil {
		return nil, err
	}
	resp, err := kv.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	var rec TokenRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil || CheckScope(rec.Scope) != nil {
		return nil, nil
	}
	return &rec, nil
}
