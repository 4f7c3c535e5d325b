package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/fleet"
)

// The lists of berth fleet: list-unit-files, list-units, list-machines.

type unitFileRow struct {
	Unit    string `json:"unit"`
	Hash    string `json:"hash"`
	DState  string `json:"dstate"`          // desired: the job's target
	State   string `json:"state,omitempty"` // current, from the agent's report
	Machine string `json:"machine,omitempty"`
}

func (f *fleetCtl) listUnitFiles(ctx context.Context, _ []string) error {
	v, err := f.view(ctx)
	if err != nil {
		return err
	}
	var rows []unitFileRow
	for _, name := range slices.Sorted(maps.Keys(v.jobs)) {
		j := v.jobs[name]
		rows = append(rows, unitFileRow{Unit: name, Hash: j.Hash[:7], DState: j.Target, State: currentState(v.states, name),
			Machine: placement(v.sched[name])})
	}
	return printRows(f, rows, "UNIT\tHASH\tDSTATE\tSTATE\tTARGET", func(w io.Writer, r unitFileRow) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Unit, r.Hash, r.DState, dash(r.State), dash(r.Machine))
	})
}

type unitRow struct {
	Unit    string `json:"unit"`
	Machine string `json:"machine,omitempty"`
	Active  string `json:"active,omitempty"` // systemd's ActiveState on the machine
	Sub     string `json:"sub,omitempty"`
	Reason  string `json:"reason,omitempty"` // why the unit is not placed
}

func (f *fleetCtl) listUnits(ctx context.Context, _ []string) error {
	v, err := f.view(ctx)
	if err != nil {
		return err
	}
	var rows []unitRow
	for _, name := range slices.Sorted(maps.Keys(v.sched)) {
		p := v.sched[name]
		st := v.states[name]
		rows = append(rows, unitRow{Unit: name, Machine: placement(p), Active: st.Active, Sub: st.Sub, Reason: p.Reason})
	}
	return printRows(f, rows, "UNIT\tMACHINE\tACTIVE\tSUB\tREASON", func(w io.Writer, r unitRow) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Unit, dash(r.Machine), dash(r.Active), dash(r.Sub), dash(r.Reason))
	})
}

type machineRow struct {
	Machine  string            `json:"machine"`
	IP       string            `json:"ip"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

func (f *fleetCtl) listMachines(ctx context.Context, _ []string) error {
	rctx, cancel := f.ctx(ctx)
	defer cancel()
	resp, err := f.cli.Get(rctx, f.keys.NodesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return f.o.Etcd.wrapErr(err)
	}
	var rows []machineRow
	for _, m := range fleet.Machines(f.keys, resp.Kvs) {
		rows = append(rows, machineRow{Machine: m.ID, IP: m.Addr, Metadata: m.Metadata})
	}
	return printRows(f, rows, "MACHINE\tIP\tMETADATA", func(w io.Writer, r machineRow) {
		var md []string
		for _, k := range slices.Sorted(maps.Keys(r.Metadata)) {
			md = append(md, k+"="+r.Metadata[k])
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", r.Machine, r.IP, dash(strings.Join(md, ",")))
	})
}

// printRows writes rows as a table (header, then each row) or as JSON.
func printRows[T any](f *fleetCtl, rows []T, header string, row func(io.Writer, T)) error {
	if f.o.Output == "json" {
		if rows == nil {
			rows = []T{}
		}
		return json.NewEncoder(f.g.stdout).Encode(rows)
	}
	tw := tabwriter.NewWriter(f.g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		row(tw, r)
	}
	return tw.Flush()
}
