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
                             [--gross-rate X] [--gross-min-requests N] [--final-alpha X] [--table]

Re-runs the canary judge over the readings stored with past deployments, look
by look as the bot did, with the configuration's thresholds or the ones given,
and prints for each verdict (each bisection round's too) the stored verdict
and the replayed one side by side, with the reading at which each was
decided. Without --id it replays
every deployment that has verdicts and ends with how many outcomes change.
The store is only read; stop the bot first, or copy the file and pass
--store COPY.
`

// replayOptions is what `deploybot judge replay` was asked to do.
type replayOptions struct {
	cfgPath, storePath string
	id                 int64
	table              bool
	// set applies the threshold flags given on the command line to the
	// configuration's judge settings.
	set func(*judge.Config)
}

// judgeCommand runs `deploybot judge ...`.
func judgeCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "replay" {
		fmt.Fprint(stderr, judgeUsage)
		return 2
	}
	o, err := parseReplayFlags(args[1:], stderr)
	if err != nil {
		return helpOr2(err)
	}
	return replayCommand(o, stdout, stderr)
}

// parseReplayFlags parses replay's flags; an error, the problem said on
// stderr, when they are wrong (flag.ErrHelp when help was asked for).
func parseReplayFlags(args []string, stderr io.Writer) (o replayOptions, err error) {
	fs := flag.NewFlagSet("judge replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, judgeUsage) }
	fs.StringVar(&o.cfgPath, "config", "deploybot.yaml", "configuration file (its store and thresholds)")
	fs.StringVar(&o.storePath, "store", "", "bbolt file to read instead of the configuration's store.path")
	fs.Int64Var(&o.id, "id", 0, "replay only this deployment")
	fs.BoolVar(&o.table, "table", false, "also print each replayed verdict's table")
	var jc judge.Config
	fs.Float64Var(&jc.Alpha, "alpha", 0, "false-alarm bound of the sequential test")
	fs.Float64Var(&jc.Factor, "factor", 0, "relative effect floor: threshold >= baseline x factor")
	fs.Float64Var(&jc.AbsDiff, "abs-diff", 0, "absolute effect floor: threshold >= baseline + abs-diff")
	fs.IntVar(&jc.MinRequests, "min-requests", 0, "requests a host needs before it can pass")
	fs.Float64Var(&jc.GrossRate, "gross-rate", 0, "error rate that fails a host at once")
	fs.IntVar(&jc.GrossMinRequests, "gross-min-requests", 0, "requests the gross rule needs")
	fs.Float64Var(&jc.FinalAlpha, "final-alpha", 0, "level of the end-of-window test (negative: off)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "deploybot judge replay: unexpected %q\n%s", fs.Arg(0), judgeUsage)
		return o, fmt.Errorf("unexpected %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	o.set = func(c *judge.Config) {
		for name, apply := range map[string]func(){
			"alpha":              func() { c.Alpha = jc.Alpha },
			"factor":             func() { c.Factor = jc.Factor },
			"abs-diff":           func() { c.AbsDiff = jc.AbsDiff },
			"min-requests":       func() { c.MinRequests = jc.MinRequests },
			"gross-rate":         func() { c.GrossRate = jc.GrossRate },
			"gross-min-requests": func() { c.GrossMinRequests = jc.GrossMinRequests },
			"final-alpha":        func() { c.FinalAlpha = jc.FinalAlpha },
		} {
			if given[name] {
				apply()
			}
		}
	}
	return o, nil
}

// replayCommand loads the configuration and the stored deployments and
// prints, for every stored verdict, the stored and the replayed verdict.
func replayCommand(o replayOptions, stdout, stderr io.Writer) int {
	c, err := config.Load(o.cfgPath)
	var ps config.Problems
	if errors.As(err, &ps) {
		fmt.Fprintf(stderr, "%s has problems (run `deploybot check-config --config %s`):\n%s\n", o.cfgPath, o.cfgPath, ps.Error())
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, "deploybot judge replay:", err)
		return 1
	}
	jc := judgeConfig(c)
	o.set(&jc)
	if err := jc.Validate(); err != nil {
		fmt.Fprintln(stderr, "deploybot judge replay:", deployer.ErrorMessage(err))
		return 2
	}
	path := c.Store.Path
	if o.storePath != "" {
		path = o.storePath
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
	ds, err := storedDeployments(st, o.id)
	if err != nil {
		fmt.Fprintln(stderr, "deploybot judge replay:", err)
		return 1
	}

	// What the replay really uses: judge.New puts defaults in place of
	// zeros (--abs-diff 0 is the default, not no floor).
	eff := judge.New(jc).Config()
	fmt.Fprintf(stdout, "judge: alpha %g, factor %g, abs_diff %g, min_requests %d, gross_rate %g, gross_min_requests %d, final_alpha %g\n",
		eff.Alpha, eff.Factor, eff.AbsDiff, eff.MinRequests, eff.GrossRate, eff.GrossMinRequests, eff.FinalAlpha)
	var all []judge.ReplayResult
	for _, d := range ds {
		for _, r := range judge.Replay(jc, d) {
			all = append(all, r)
			fmt.Fprintln(stdout, r.String())
			if o.table && r.Err == "" {
				for _, line := range judge.Table(r.Verdict)[1:] {
					fmt.Fprintln(stdout, "    "+line)
				}
			}
		}
	}
	fmt.Fprintln(stdout, judge.ReplaySummary(all))
	return 0
}

// storedDeployments returns deployment id, or (id 0) every deployment
// with verdicts, oldest first. Its errors are plain sentences.
func storedDeployments(st *store.Store, id int64) ([]*deployer.Deployment, error) {
	if id != 0 {
		d, err := st.Get(id)
		if err != nil {
			return nil, errors.New(deployer.ErrorMessage(err))
		}
		if len(d.Verdicts) == 0 {
			return nil, fmt.Errorf("deployment #%d has no stored verdicts (it is %s)", d.ID, d.State)
		}
		return []*deployer.Deployment{d}, nil
	}
	var ds []*deployer.Deployment
	for off := 0; ; off += 100 {
		page, err := st.List(off, 100)
		if err != nil {
			return nil, err
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
	return ds, nil
}
