// placeholder: replaced as obs/ grows
