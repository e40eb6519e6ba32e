-- Adult drug and alcohol treatment episodes; every version of every record.
{{ staged_records('drugs_alcohol', ['substance', 'lives_with_children']) }}
