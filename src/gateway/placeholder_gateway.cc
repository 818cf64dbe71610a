// placeholder: replaced as gateway/ grows
