/* A table of GTest cases, registered at once. */
#include "test-support.h"

void
test_add_cases (const TestCase *cases, gsize n_cases,
                const TestFixture *fixture)
{
  for (gsize i = 0; i < n_cases; i++)
    {
      const TestCase *c = &cases[i];

      if (c->func)
        {
          g_test_add_func (c->path, c->func);
          continue;
        }
      if (c->data_func)
        {
          g_test_add_data_func (c->path, c->data, c->data_func);
          continue;
        }
      g_assert_nonnull (fixture);
      g_test_add_vtable (c->path, fixture->size, c->data, fixture->setup,
                         c->fixture_func, fixture->teardown);
    }
}
