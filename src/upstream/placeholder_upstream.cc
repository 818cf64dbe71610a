// placeholder: replaced as upstream/ grows
