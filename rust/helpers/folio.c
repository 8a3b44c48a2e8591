// SPDX-License-Identifier: GPL-2.0

#include <linux/mm.h>
#include <linux/pagemap.h>

__rust_helper void rust_helper_folio_put(struct folio *folio)
{
	folio_put(folio);
}

__rust_helper unsigned int rust_helper_folio_order(const struct folio *folio)
{
	return folio_order(folio);
}

__rust_helper unsigned long rust_helper_page_to_pfn(const struct page *page)
{
	return page_to_pfn(page);
}

__rust_helper bool rust_helper_folio_test_dirty(const struct folio *folio)
{
	return folio_test_dirty(folio);
}

__rust_helper unsigned long rust_helper_folio_page_idx(const struct folio *folio,
						       const struct page *page)
{
	return folio_page_idx(folio, page);
}
