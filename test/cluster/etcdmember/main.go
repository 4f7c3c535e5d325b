// Command etcdmember is the etcd server of the etcd release berth is built
// against (go.etcd.io/etcd/server/v3, the same code berth up embeds), as a
// plain etcd binary with etcd's own flags. The fleet cluster test runs its
// members with it: that etcd has no v2 API, so fleet itself could not run
// there.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
