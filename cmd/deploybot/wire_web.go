package main

import (
	"context"
	"fmt"

	"github.com/deploybot/deploybot/web"
)

// openWeb binds the dashboard's address, so that its URL is known before
// Run (the demo prints it, and chat messages link to it), and makes it a
// chat adapter: it hears every notice, for its live page and metrics.
// A configuration with web.listen "off" serves no dashboard.
func (m *Main) openWeb() error {
	c := m.Config.Web
	if !c.Enabled() {
		return nil
	}
	tok, err := c.Token()
	if err != nil {
		return err
	}
	if tok != "" && len(tok) < 16 {
		return fmt.Errorf("the dashboard's access token has %d characters: use at least 16 random ones", len(tok))
	}
	w := web.New(web.Options{
		Store: m.Store, Fleet: m.Fleet, Pipeline: m.Runner.Config(),
		Token: tok, BaseURL: c.BaseURL, ChangeURL: c.ChangeURL,
		Logger: m.Logger.With("component", "web"),
	})
	if err := w.Listen(c.Listen); err != nil {
		return err
	}
	m.Web = w
	m.closers = append(m.closers, w.Close)
	m.Bot.AddAdapter(w)
	m.Bot.Link = w.Link
	m.Bot.Dashboard = w.URL()
	prev := m.Bot.OnReconnect
	m.Bot.OnReconnect = func(adapter string) {
		w.Reconnected(adapter)
		if prev != nil {
			prev(adapter)
		}
	}
	return nil
}

// serveWeb serves the dashboard until ctx ends. The channel it returns
// is closed once the dashboard has stopped. Only a dashboard that stops
// by itself while the bot runs is an error; one closed because the bot is
// stopping says so at info level.
func (m *Main) serveWeb(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if m.Web == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		err := m.Web.Serve(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			m.Logger.Error("dashboard stopped", "err", err)
		case err != nil:
			m.Logger.Info("dashboard stopped with the bot", "detail", err)
		default:
			m.Logger.Info("dashboard stopped with the bot")
		}
	}()
	return done
}

// dashboardURL is the dashboard's address for people, or "" when off.
func (m *Main) dashboardURL() string {
	if m.Web == nil {
		return ""
	}
	return m.Web.URL() + "/"
}
