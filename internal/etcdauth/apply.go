package etcdauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"go.etcd.io/etcd/api/v3/authpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Apply makes etcd's users, roles and permissions match roles, through a
// client with root access, and enables auth. It is idempotent: it creates
// what is missing, grants what is missing, revokes permissions of berth's
// roles that roles no longer name, and leaves other roles and users alone.
// Each role gets a user of its name without a password (client certificate
// auth); the root user is created the same way if missing. Every change is
// printed to out, one line each.
func Apply(ctx context.Context, a clientv3.Auth, roles []Role, out io.Writer) error {
	rl, err := a.RoleList(ctx)
	if err != nil {
		return fmt.Errorf("list roles: %w", err)
	}
	ul, err := a.UserList(ctx)
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	for _, r := range roles {
		if !slices.Contains(rl.Roles, r.Name) {
			// Every server runs this at boot: another may have added it
			// since the list.
			if _, err := a.RoleAdd(ctx, r.Name); err == nil {
				fmt.Fprintf(out, "role %s: created\n", r.Name)
			} else if !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
				return fmt.Errorf("add role %s: %w", r.Name, err)
			}
		}
		if err := syncPerms(ctx, a, r, out); err != nil {
			return err
		}
		if err := ensureUser(ctx, a, ul.Users, r.Name, r.Name, out); err != nil {
			return err
		}
	}
	if err := ensureUser(ctx, a, ul.Users, RootUser, "root", out); err != nil {
		return err
	}
	st, err := a.AuthStatus(ctx)
	if err != nil {
		return fmt.Errorf("auth status: %w", err)
	}
	if st.Enabled {
		fmt.Fprintln(out, "auth: enabled already")
		return nil
	}
	if _, err := a.AuthEnable(ctx); err != nil {
		return fmt.Errorf("enable auth: %w", err)
	}
	fmt.Fprintln(out, "auth: enabled")
	return nil
}

// syncPerms grants r's permissions that are missing and revokes the others.
func syncPerms(ctx context.Context, a clientv3.Auth, r Role, out io.Writer) error {
	got, err := a.RoleGet(ctx, r.Name)
	if err != nil {
		return fmt.Errorf("get role %s: %w", r.Name, err)
	}
	have := map[Perm]bool{}
	for _, p := range got.Perm {
		have[fromPB(p)] = true
	}
	for _, p := range r.Perms {
		if have[p] {
			delete(have, p)
			continue
		}
		if _, err := a.RoleGrantPermission(ctx, r.Name, p.Key, p.End, p.Type); err != nil {
			return fmt.Errorf("grant %s to %s: %w", p, r.Name, err)
		}
		fmt.Fprintf(out, "role %s: granted %s\n", r.Name, p)
	}
	for p := range have {
		if slices.ContainsFunc(r.Perms, func(q Perm) bool { return q.Key == p.Key && q.End == p.End }) {
			continue // a changed type: the grant above replaced it
		}
		if _, err := a.RoleRevokePermission(ctx, r.Name, p.Key, p.End); errors.Is(err, rpctypes.ErrPermissionNotGranted) {
			continue // another server's apply revoked it
		} else if err != nil {
			return fmt.Errorf("revoke %s from %s: %w", p, r.Name, err)
		}
		fmt.Fprintf(out, "role %s: revoked %s\n", r.Name, p)
	}
	return nil
}

// ensureUser creates user (without a password) if missing and grants it
// role if it lacks it.
func ensureUser(ctx context.Context, a clientv3.Auth, users []string, user, role string, out io.Writer) error {
	if !slices.Contains(users, user) {
		_, err := a.UserAddWithOptions(ctx, user, "", &clientv3.UserAddOptions{NoPassword: true})
		switch {
		case err == nil:
			fmt.Fprintf(out, "user %s: created (no password: a client certificate with CN=%s)\n", user, user)
		case !errors.Is(err, rpctypes.ErrUserAlreadyExist): // else: another server's apply added it
			return fmt.Errorf("add user %s: %w", user, err)
		}
	}
	u, err := a.UserGet(ctx, user)
	if err != nil {
		return fmt.Errorf("get user %s: %w", user, err)
	}
	if slices.Contains(u.Roles, role) {
		return nil
	}
	if _, err := a.UserGrantRole(ctx, user, role); err != nil {
		return fmt.Errorf("grant role %s to user %s: %w", role, user, err)
	}
	fmt.Fprintf(out, "user %s: granted role %s\n", user, role)
	return nil
}

func fromPB(p *authpb.Permission) Perm {
	return Perm{Type: clientv3.PermissionType(p.PermType), Key: string(p.Key), End: string(p.RangeEnd)}
}
