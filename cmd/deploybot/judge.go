package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/judge"
	"github.com/deploybot/deploybot/store"
)

const judgeUsage = `usage: deploybot judge replay [--id N] [--config FILE] [--store FILE]
                             [--alpha X] [--factor X] [--abs-diff X] [--min-requests N]
                             [--gross-rate X] [--gross-min-requests N] [--table]

Re-runs the canary judge over the readings stored with past deployments, look
by look as the bot did, with the configuration's thresholds or the ones given,
and prints for each verdict the stored outcome, the replayed one, and the
reading at which each was decided. Without --id it replays every deployment
that has verdicts and ends with how many outcomes change. The store is only
read; stop the bot first, or copy the file and pass --store COPY.
`

// judgeCommand runs `deploybot judge ...`.
func judgeCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "replay" {
		fmt.Fprint(stderr, judgeUsage)
		return 2
	}
	fs := flag.NewFlagSet("judge replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, judgeUsage) }
	cfgPath := fs.String("config", "deploybot.yaml", "configuration file (its store and thresholds)")
	storePath := fs.String("store", "", "bbolt file to read instead of the configuration's store.path")
	id := fs.Int64("id", 0, "replay only this deployment")
	alpha := fs.Float64("alpha", 0, "significance level of each look")
	factor := fs.Float64("factor", 0, "relative effect floor: threshold >= baseline x factor")
	absDiff := fs.Float64("abs-diff", 0, "absolute effect floor: threshold >= baseline + abs-diff")
	minReq := fs.Int("min-requests", 0, "requests a host needs before it can pass")
	grossRate := fs.Float64("gross-rate", 0, "error rate that fails a host at once")
	grossMin := fs.Int("gross-min-requests", 0, "requests the gross rule needs")
	table := fs.Bool("table", false, "also print each replayed verdict's table")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "deploybot judge replay: unexpected %q\n%s", fs.Arg(0), judgeUsage)
		return 2
	}

	c, err := config.Load(*cfgPath)
	var ps config.Problems
	if errors.As(err, &ps) {
		fmt.Fprintf(stderr, "%s has problems (run `deploybot check-config --config %s`):\n%s\n", *cfgPath, *cfgPath, ps.Error())
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, "deploybot judge replay:", err)
		return 1
	}
	jc := judgeConfig(c)
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "alpha":
			jc.Alpha = *alpha
		case "factor":
			jc.Factor = *factor
		case "abs-diff":
			jc.AbsDiff = *absDiff
		case "min-requests":
			jc.MinRequests = *minReq
		case "gross-rate":
			jc.GrossRate = *grossRate
		case "gross-min-requests":
			jc.GrossMinRequests = *grossMin
		}
	})
	if err := jc.Validate(); err != nil {
		fmt.Fprintln(stderr, "deploybot judge replay:", deployer.ErrorMessage(err))
		return 2
	}
	path := c.Store.Path
	if *storePath != "" {
		path = *storePath
	}
	// store.Open creates a missing file: look first, so a typo is an
	// error rather than an empty history.
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(stderr, "deploybot judge replay: no store at %s\n", path)
		return 1
	}
	st, err := store.Open(path, c.Store.OpenTimeout.D())
	if errors.Is(err, store.ErrInUse) {
		fmt.Fprintf(stderr, "deploybot judge replay: %s is in use by a running bot; stop it, or copy the file and pass --store COPY\n", path)
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, "deploybot judge replay:", err)
		return 1
	}
	defer st.Close()

	var ds []*deployer.Deployment
	if *id != 0 {
		d, err := st.Get(*id)
		if err != nil {
			fmt.Fprintf(stderr, "deploybot judge replay: %s\n", deployer.ErrorMessage(err))
			return 1
		}
		if len(d.Verdicts) == 0 {
			fmt.Fprintf(stderr, "deploybot judge replay: deployment #%d has no stored verdicts (it is %s)\n", d.ID, d.State)
			return 1
		}
		ds = append(ds, d)
	} else {
		for off := 0; ; off += 100 {
			page, err := st.List(off, 100)
			if err != nil {
				fmt.Fprintln(stderr, "deploybot judge replay:", err)
				return 1
			}
			for _, d := range page {
				if len(d.Verdicts) > 0 {
					ds = append(ds, d)
				}
			}
			if len(page) < 100 {
				break
			}
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i].ID < ds[j].ID })
	}

	fmt.Fprintf(stdout, "judge: alpha %g, factor %g, abs_diff %g, min_requests %d, gross_rate %g, gross_min_requests %d\n",
		jc.Alpha, jc.Factor, jc.AbsDiff, jc.MinRequests, jc.GrossRate, jc.GrossMinRequests)
	var all []judge.ReplayResult
	for _, d := range ds {
		for _, r := range judge.Replay(jc, d) {
			all = append(all, r)
			fmt.Fprintln(stdout, r.String())
			if *table && r.Err == "" {
				for _, line := range judge.Table(r.Verdict)[1:] {
					fmt.Fprintln(stdout, "    "+line)
				}
			}
		}
	}
	fmt.Fprintln(stdout, judge.ReplaySummary(all))
	return 0
}
