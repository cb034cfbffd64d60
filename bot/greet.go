package bot

import "github.com/deploybot/deploybot/deployer"

// Greet says text once in every adapter's channel except those named in
// skip (the console: the terminal already printed the start-up summary).
// An adapter that is not connected yet says it once it is: the IRC adapter
// queues it until it has joined.
func (b *Bot) Greet(text string, skip ...string) {
	b.mu.Lock()
	as := append([]Adapter(nil), b.adapters...)
	b.mu.Unlock()
	n := deployer.Notice{Kind: deployer.NoticeInfo, Text: text}
	b.Log.Info("greeting", "text", text)
next:
	for _, a := range as {
		for _, s := range skip {
			if a.Name() == s {
				continue next
			}
		}
		a.Announce(n, nil)
	}
}
