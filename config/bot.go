package config

// Bot names the bot in chat.
type Bot struct {
	Name   string `yaml:"name"`   // what people address it as: "deploybot: status"
	Prefix string `yaml:"prefix"` // command prefix, "!" by default
}

func (b *Bot) defaults() {
	setDefault(&b.Name, "deploybot")
	setDefault(&b.Prefix, "!")
}
