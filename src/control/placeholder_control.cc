// placeholder: replaced as control/ grows
